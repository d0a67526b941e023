package hw

import (
	"context"
	"errors"
	"time"
)

// Step is one reading of a Script: Sample is emitted At after the script
// starts.
type Step struct {
	At     time.Duration
	Sample Sample
}

// Script is a scripted fake probe for tests and drills: a timeline of
// readings, played in order.
type Script []Step

// Validate checks that the steps are in time order.
func (s Script) Validate() error {
	for i := 1; i < len(s); i++ {
		if s[i].At < s[i-1].At {
			return errors.New("hw script: steps out of time order")
		}
	}
	return nil
}

// Play emits each step's sample at its time after start, through emit, until
// the script ends or ctx ends. emit must not block for long. Samples carry
// the time they were emitted.
func (s Script) Play(ctx context.Context, emit func(Sample)) error {
	if err := s.Validate(); err != nil {
		return err
	}
	start := time.Now()
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for _, st := range s {
		t.Reset(time.Until(start.Add(st.At)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			smp := st.Sample
			smp.At = now
			emit(smp)
		}
	}
	return nil
}
