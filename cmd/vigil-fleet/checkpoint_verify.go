package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

// subset is --subset i/m: the checkpoints whose sequence number is
// i modulo m (all of them when m is 0).
type subset struct{ i, m uint64 }

func (s *subset) String() string {
	if s.m == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.i, s.m)
}

func (s *subset) Set(v string) error {
	a, b, ok := strings.Cut(v, "/")
	i, err1 := strconv.ParseUint(a, 10, 64)
	m, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || m == 0 || i >= m {
		return fmt.Errorf("%q: want i/m with 0 <= i < m, e.g. 3/7", v)
	}
	s.i, s.m = i, m
	return nil
}

func (s *subset) has(m *manifest.Manifest) bool { return s.m == 0 || m.Seq%s.m == s.i }

func setupCheckpointVerify(g *globals, fs *flag.FlagSet) func(context.Context, []string) error {
	sf := addCkptStoreFlags(fs)
	vehicle := fs.String("vehicle", "", "verify this vehicle's checkpoints (default: every vehicle's)")
	readData := fs.Bool("read-data", false, "also read every chunk back from the blob store and check its size and SHA-256, that it inflates, and the whole stream's length and SHA-256")
	var sub subset
	fs.Var(&sub, "subset", "check only the checkpoints whose sequence number is i modulo m (i/m), for scrubs that rotate: run i = day-of-year mod m daily and every checkpoint is read within m days")
	return func(ctx context.Context, args []string) error {
		if len(args) > 0 {
			return fmt.Errorf("checkpoint verify: unexpected arguments %q", args)
		}
		s, err := sf.open("checkpoint verify")
		if err != nil {
			return err
		}
		vs, err := s.vehicles("checkpoint verify", *vehicle)
		if err != nil {
			return err
		}
		v := &verifier{w: g.stdout, blobs: s.blobs, readData: *readData, sub: sub, now: time.Now}
		for _, vehicle := range vs {
			if err := v.vehicle(ctx, s.cat, vehicle); err != nil {
				return err
			}
		}
		return v.summary()
	}
}

// verifier checks checkpoints and counts what it checked and what failed.
type verifier struct {
	w        io.Writer
	blobs    blob.Store
	readData bool
	sub      subset
	now      func() time.Time

	first string // the first failure of the checkpoint being checked

	checkpoints, read, chunks, failures int
	bytes                               int64
}

func (v *verifier) fail(format string, args ...any) {
	v.failures++
	msg := fmt.Sprintf(format, args...)
	if v.first == "" {
		v.first = msg
	}
	fmt.Fprintln(v.w, "FAIL "+msg)
}

// vehicle checks the chain rules of every checkpoint of vehicle that the
// subset selects and, with readData, reads its chunks. Only a cancelled
// ctx is an error; what fails is counted and printed.
func (v *verifier) vehicle(ctx context.Context, cat *blob.Catalog, vehicle string) error {
	ms, err := cat.Manifests(vehicle)
	if err != nil {
		v.fail("vehicle %s: %v", vehicle, err)
		return nil
	}
	for _, sms := range byStore(ms) {
		for _, m := range sms {
			if !v.sub.has(m) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("checkpoint verify: %w", err)
			}
			v.checkpoints++
			v.first = ""
			w := where(vehicle, m.StoreID)
			if _, err := manifest.Chain(sms, m.ID, vehicle, w); err != nil {
				v.fail("%s checkpoint %s: %v", w, m.ID, err)
			}
			if v.readData {
				if err := v.data(ctx, w, m); err != nil {
					return err
				}
			}
			rec := blob.Verification{At: v.now().UTC(), ReadData: v.readData, OK: v.first == "", Problem: v.first}
			if err := cat.RecordVerification(vehicle, m.StoreID, m.ID, rec); err != nil {
				return fmt.Errorf("checkpoint verify: %w", err)
			}
		}
	}
	return nil
}

// data reads m's chunks back and checks them (manifest.Verify); when that
// fails it reads them one by one to name every bad chunk, not just the
// first.
func (v *verifier) data(ctx context.Context, w string, m *manifest.Manifest) error {
	v.read++
	v.chunks += len(m.Chunks)
	v.bytes += m.Bytes
	src := blob.Source(ctx, v.blobs)
	err := manifest.Verify(ctx, src, m)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("checkpoint verify: %w", ctx.Err())
	}
	bad := 0
	for i := range m.Chunks {
		if _, cerr := manifest.ReadChunk(src, m, i); cerr != nil {
			v.fail("%s: %v", w, cerr)
			bad++
		}
	}
	if bad == 0 { // every chunk is whole: the stream itself is wrong
		v.fail("%s: %v", w, err)
	}
	return nil
}

func (v *verifier) summary() error {
	read := "chains only (no --read-data)"
	if v.readData {
		read = fmt.Sprintf("%d read back (%d chunks, %s)", v.read, v.chunks, size(v.bytes))
	}
	sub := ""
	if v.sub.m != 0 {
		sub = " of subset " + v.sub.String()
	}
	fmt.Fprintf(v.w, "verify: %d checkpoints%s, %s, %d failures\n", v.checkpoints, sub, read, v.failures)
	if v.failures > 0 {
		return fmt.Errorf("checkpoint verify: %d failures", v.failures)
	}
	if v.checkpoints == 0 && v.sub.m == 0 {
		return errors.New("checkpoint verify: no checkpoints to verify (wrong --vehicle or --store-dir?)")
	}
	return nil
}
