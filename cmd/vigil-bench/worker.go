package main

import "github.com/vigil-av/vigil/inference"

// vigil-bench runs backends with isolation: process in worker processes
// of its own binary, as vigild does: WorkerMain serves such a worker and
// exits before main runs.
func init() { inference.WorkerMain() }
