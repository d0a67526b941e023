package main

import "github.com/vigil-av/vigil/inference"

// vigild is also the worker process of its backends with isolation:
// process: the daemon starts its own binary again with a hidden first
// argument, and WorkerMain serves that worker and exits before main runs.
// Started normally, it only records that this program can start workers.
func init() { inference.WorkerMain() }
