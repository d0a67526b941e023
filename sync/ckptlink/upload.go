package ckptlink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

var (
	// errDeleted: the checkpoint went from the directory meanwhile.
	errDeleted = errors.New("checkpoint deleted")
	// errFailed: the checkpoint can never complete (the cloud refused its
	// manifest, or it does not verify); recorded in its progress file.
	errFailed = errors.New("checkpoint upload failed for good")
)

// maxRefusals is how many bad_hash refusals of one envelope an upload
// takes before it gives up until the next pass.
const maxRefusals = 8

// upload is one checkpoint's upload in progress.
type upload struct {
	s        *Shipper
	m        *manifest.Manifest
	cdir     string
	p        *progress
	inflight map[int]time.Time // chunk → when it goes again without an ack
	sent     map[int]bool      // chunks sent by this upload
	refused  map[int]int       // bad_hash refusals per chunk; -1: the manifest
	raw      []byte            // the manifest as on disk
	due      time.Time         // the manifest's ack deadline; zero: not sent
	dirty    bool              // p changed since saved
	done     bool
	err      error // ends the upload
}

// upload uploads m until the cloud says it is complete, ctx ends, or it
// fails (errDeleted, errFailed, or an error to try again later).
func (s *Shipper) upload(ctx context.Context, m *manifest.Manifest) error {
	cdir := filepath.Join(s.cfg.Dir, m.ID)
	p, err := loadProgress(cdir, m)
	if err != nil {
		return s.gone(cdir, err)
	}
	raw, err := os.ReadFile(filepath.Join(cdir, manifest.Name))
	if err != nil {
		return s.gone(cdir, err)
	}
	u := &upload{s: s, m: m, cdir: cdir, p: p, raw: raw,
		inflight: map[int]time.Time{}, sent: map[int]bool{}, refused: map[int]int{}}
	s.mu.Lock()
	s.stats.Current = m.ID
	s.mu.Unlock()
	s.setCheckpoint(m.ID, func(c *CheckpointStats) { c.State, c.LastError = StateUploading, "" })
	err = u.loop(ctx)
	s.mu.Lock()
	s.stats.Current = ""
	s.mu.Unlock()
	s.setCheckpoint(m.ID, func(c *CheckpointStats) {
		c.Acked = u.p.count()
		switch {
		case u.p.Complete:
			c.State = StateComplete
		case errors.Is(err, errFailed):
			c.State, c.LastError = StateFailed, err.Error()
		default:
			c.State = StatePending
			if err != nil && ctx.Err() == nil {
				c.LastError = err.Error()
			}
		}
	})
	return err
}

// gone is err, or errDeleted when the checkpoint's directory is gone.
func (s *Shipper) gone(cdir string, err error) error {
	if _, serr := os.Stat(filepath.Join(cdir, manifest.Name)); errors.Is(serr, os.ErrNotExist) {
		return fmt.Errorf("checkpoint %s: %w", filepath.Base(cdir), errDeleted)
	}
	return err
}

func (u *upload) loop(ctx context.Context) error {
	wait := time.NewTimer(time.Hour)
	defer wait.Stop()
	for {
		u.drainAcks()
		if err := u.save(); err != nil {
			return err
		}
		if u.done || u.err != nil {
			return u.err
		}
		d, err := u.next(ctx)
		if err != nil {
			return err
		}
		if d == 0 {
			continue
		}
		wait.Reset(d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case a := <-u.s.acks:
			u.apply(a)
		case <-wait.C:
		}
		if !wait.Stop() {
			select {
			case <-wait.C:
			default:
			}
		}
	}
}

func (u *upload) drainAcks() {
	for {
		select {
		case a := <-u.s.acks:
			u.apply(a)
		default:
			return
		}
	}
}

func (u *upload) save() error {
	if !u.dirty {
		return nil
	}
	if err := u.p.save(u.cdir, u.s.clock.Now()); err != nil {
		return u.s.gone(u.cdir, err)
	}
	u.dirty = false
	acked := u.p.count()
	u.s.setCheckpoint(u.m.ID, func(c *CheckpointStats) { c.Acked = acked })
	return nil
}

// next sends what is due: the next chunk the window allows, or, once
// every chunk is acknowledged, the manifest. It returns how long to wait
// for an ack before looking again (0: look again now).
func (u *upload) next(ctx context.Context) (time.Duration, error) {
	now := u.s.clock.Now()
	wake := time.Hour
	if u.p.count() == u.p.Chunks {
		if !u.due.IsZero() && now.Before(u.due) {
			return max(u.due.Sub(now), 10*time.Millisecond), nil
		}
		if err := u.sendManifest(ctx); err != nil {
			return u.backoff(ctx, err)
		}
		return 0, nil
	}
	for i, at := range u.inflight {
		if u.p.acked(i) {
			delete(u.inflight, i)
		} else if !now.Before(at) {
			delete(u.inflight, i) // no ack in time: it goes again
		} else {
			wake = min(wake, at.Sub(now))
		}
	}
	if len(u.inflight) >= u.s.cfg.Window {
		return max(wake, 10*time.Millisecond), nil
	}
	for i := range u.p.Chunks {
		if u.p.acked(i) || !u.inflight[i].IsZero() {
			continue
		}
		if err := u.sendChunk(ctx, i); err != nil {
			return u.backoff(ctx, err)
		}
		return 0, nil
	}
	return max(wake, 10*time.Millisecond), nil
}

// backoff ends the upload on a permanent error or ctx; after a failed
// publication (the link went down before the PUBACK) it waits a moment.
func (u *upload) backoff(ctx context.Context, err error) (time.Duration, error) {
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}
	if errors.Is(err, errDeleted) || errors.Is(err, errFailed) {
		return 0, err
	}
	u.s.log.Debug("checkpoint publish failed; again shortly", zap.String("checkpoint", u.m.ID), zap.Error(err))
	return 500 * time.Millisecond, nil
}

func (u *upload) sendChunk(ctx context.Context, i int) error {
	b, err := manifest.ReadChunk(manifest.Dir(u.s.cfg.Dir), u.m, i)
	if err != nil {
		if g := u.s.gone(u.cdir, err); errors.Is(g, errDeleted) {
			return g
		}
		return u.fail(err.Error())
	}
	c := u.m.Chunks[i]
	env, err := Encode(Envelope{Type: TypeChunk, Vehicle: u.s.cfg.Vehicle, Store: u.m.StoreID, ID: u.m.ID,
		Index: i, Count: len(u.m.Chunks), SHA256: c.SHA256, Data: b})
	if err != nil {
		return u.fail(err.Error())
	}
	if err := u.s.cfg.Link.PublishBulk(ctx, Topic(u.s.cfg.Vehicle), env); err != nil {
		return err
	}
	u.inflight[i] = u.s.clock.Now().Add(u.s.cfg.AckTimeout)
	again := u.sent[i]
	u.sent[i] = true
	u.s.count(func(st *ShipperStats) {
		st.ChunksSent++
		st.BytesSent += uint64(len(env))
		if again {
			st.ChunksResent++
		}
	})
	return nil
}

// sendManifest sends the manifest, in parts if it is large.
func (u *upload) sendManifest(ctx context.Context) error {
	sum := sha256.Sum256(u.raw)
	parts := (len(u.raw) + MaxPartBytes - 1) / MaxPartBytes
	for k := range parts {
		part := u.raw[k*MaxPartBytes : min(len(u.raw), (k+1)*MaxPartBytes)]
		env, err := Encode(Envelope{Type: TypeManifest, Vehicle: u.s.cfg.Vehicle, Store: u.m.StoreID, ID: u.m.ID,
			Index: k, Count: parts, SHA256: hex.EncodeToString(sum[:]), Data: part})
		if err != nil {
			return u.fail(err.Error())
		}
		if err := u.s.cfg.Link.PublishBulk(ctx, Topic(u.s.cfg.Vehicle), env); err != nil {
			return err
		}
		u.s.count(func(st *ShipperStats) { st.ManifestsSent++; st.BytesSent += uint64(len(env)) })
	}
	u.due = u.s.clock.Now().Add(u.s.cfg.AckTimeout)
	return nil
}

// fail ends the upload for good, recording why in the progress file.
func (u *upload) fail(why string) error {
	u.p.Failed = why
	u.dirty = true
	if err := u.save(); err != nil {
		return err
	}
	return fmt.Errorf("%w: checkpoint %s: %s", errFailed, u.m.ID, why)
}

// apply takes an ack of the cloud's.
func (u *upload) apply(a Ack) {
	if a.ID != u.m.ID || (a.Store != u.m.StoreID && a.Status != Refused) {
		u.s.count(func(st *ShipperStats) { st.AcksIgnored++ })
		return
	}
	chunk := a.Type == TypeChunk.String()
	switch a.Status {
	case Stored:
		if chunk && a.Index < u.p.Chunks && !u.p.acked(a.Index) {
			u.p.set(a.Index, true)
			delete(u.inflight, a.Index)
			u.dirty = true
		}
	case Complete:
		u.p.Complete, u.dirty, u.done = true, true, true
		for i := range u.p.Chunks {
			u.p.set(i, true)
		}
		u.s.log.Info("checkpoint complete in the cloud", zap.String("checkpoint", u.m.ID), zap.Int("chunks", u.p.Chunks))
	case Missing:
		for _, r := range a.Missing {
			for i := r.First; i <= r.Last && i < u.p.Chunks; i++ {
				u.p.set(i, false)
				delete(u.inflight, i)
			}
		}
		u.due, u.dirty = time.Time{}, true
		u.s.log.Info("the cloud lacks chunks of the checkpoint; sending them again", zap.String("checkpoint", u.m.ID), zap.String("detail", a.Detail))
	case Refused:
		u.refusal(a, chunk)
	}
}

func (u *upload) refusal(a Ack, chunk bool) {
	u.s.count(func(st *ShipperStats) { st.Refusals++ })
	u.s.log.Warn("checkpoint envelope refused by the cloud", zap.String("checkpoint", u.m.ID), zap.String("type", a.Type),
		zap.Int("index", a.Index), zap.String("reason", a.Reason), zap.String("detail", a.Detail))
	switch {
	case a.Reason == ReasonBadManifest || a.Reason == ReasonBadCheckpoint:
		u.err = u.fail(fmt.Sprintf("the cloud refused it: %s: %s", a.Reason, a.Detail))
	case a.Reason == ReasonBadHash:
		k := -1
		if chunk {
			k = a.Index
			delete(u.inflight, a.Index) // it goes again now
		} else {
			u.due = time.Time{}
		}
		if u.refused[k]++; u.refused[k] > maxRefusals {
			u.err = fmt.Errorf("checkpoint %s: %s %d refused %d times: %s", u.m.ID, a.Type, a.Index, u.refused[k], a.Detail)
		}
	default:
		u.err = fmt.Errorf("checkpoint %s: the cloud refused %s %d: %s: %s", u.m.ID, a.Type, a.Index, a.Reason, a.Detail)
	}
}
