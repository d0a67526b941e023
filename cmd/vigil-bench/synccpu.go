package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"syscall"
	"time"
)

// cpuSpan measures this process's CPU time over a span of the sync suite
// (a baseline's publishing, the uploader's drain) and, given a file name,
// writes a CPU profile of the span there (--cpuprofile).
type cpuSpan struct {
	cpu0    time.Duration
	profile *os.File
	stopped bool
}

// startCPUSpan starts a span; profile, if not empty, is the file its CPU
// profile goes to.
func startCPUSpan(profile string) (*cpuSpan, error) {
	s := &cpuSpan{}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("--cpuprofile %s: %w", profile, err)
		}
		s.profile = f
	}
	cpu, err := processCPU()
	if err != nil {
		s.stopProfile() //nolint:errcheck // the error to report is getrusage's
		return nil, err
	}
	s.cpu0 = cpu
	return s, nil
}

// stop ends the span (and its profile) and returns the CPU time it took.
// A span is stopped once; later calls return 0 and do nothing.
func (s *cpuSpan) stop() (time.Duration, error) {
	if s.stopped {
		return 0, nil
	}
	s.stopped = true
	cpu, err := processCPU()
	if perr := s.stopProfile(); err == nil {
		err = perr
	}
	return cpu - s.cpu0, err
}

func (s *cpuSpan) stopProfile() error {
	if s.profile == nil {
		return nil
	}
	pprof.StopCPUProfile()
	err := s.profile.Close()
	s.profile = nil
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	return nil
}

// processCPU is the CPU time this process has used so far, user and
// system, all its threads.
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}
