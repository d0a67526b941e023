package ckptlink

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
	"github.com/vigil-av/vigil/sync/blob"
)

// Handle handles one message of a vehicle's checkpoint topic and returns
// the vehicle to acknowledge and the ack; ok is false when no ack is to
// be sent (a topic naming no vehicle, or a local failure: the vehicle
// sends again at its ack timeout). A chunk is stored when its bytes hash
// as its envelope says; a manifest (put together from its parts) is
// acknowledged complete only when every chunk it lists is in the blob
// store, hash-checked, and the whole checkpoint verifies
// (manifest.Verify), and the catalog has recorded it.
func (r *Receiver) Handle(ctx context.Context, topic string, payload []byte) (vehicle string, ack Ack, ok bool) {
	r.received.Add(1)
	vehicle, ok = VehicleFromTopic(topic)
	if !ok {
		r.badTopic.Add(1)
		r.log.Warn("checkpoint envelope on an unexpected topic", zap.String("topic", topic))
		return "", Ack{}, false
	}
	e, err := Decode(payload)
	ack = Ack{Vehicle: vehicle, Store: e.Store, ID: e.ID, Index: e.Index}
	if e.Type != 0 {
		ack.Type = e.Type.String()
	}
	switch {
	case errors.Is(err, ErrHash):
		return vehicle, r.refuse(ack, ReasonBadHash, err), true
	case err != nil:
		return vehicle, r.refuse(Ack{Vehicle: vehicle}, ReasonBadEnvelope, err), true
	case e.Vehicle != vehicle:
		return vehicle, r.refuse(ack, ReasonWrongVehicle, fmt.Errorf("checkpoint %s: an envelope of vehicle %q on %s", e.ID, e.Vehicle, topic)), true
	}
	if e.Type == TypeChunk {
		a, ok := r.chunk(ctx, e, ack)
		return vehicle, a, ok
	}
	raw, whole := r.stage.add(e)
	if !whole {
		r.parts.Add(1)
		ack.Status = Stored
		return vehicle, ack, true
	}
	a, ok := r.manifest(ctx, e, raw, ack)
	return vehicle, a, ok
}

func (r *Receiver) refuse(a Ack, reason string, err error) Ack {
	r.refused.Add(1)
	r.reasonsMu.Lock()
	r.reasons[reason]++
	r.reasonsMu.Unlock()
	r.log.Warn("checkpoint envelope refused", zap.String("vehicle", a.Vehicle), zap.String("checkpoint", a.ID),
		zap.String("reason", reason), zap.Error(err))
	a.Status, a.Reason, a.Detail = Refused, reason, err.Error()
	return a
}

func (r *Receiver) chunk(ctx context.Context, e Envelope, ack Ack) (Ack, bool) {
	// Put even a stored chunk: it makes it young, so that prune's grace
	// period keeps it while its checkpoint is not complete.
	has, err := r.cfg.Blobs.Has(ctx, e.SHA256)
	if err == nil {
		err = r.cfg.Blobs.Put(ctx, e.SHA256, e.Data)
	}
	switch {
	case errors.Is(err, blob.ErrHash):
		return r.refuse(ack, ReasonBadHash, fmt.Errorf("checkpoint %s chunk %s: %w", e.ID, manifest.ChunkName(e.Index), err)), true
	case err != nil:
		r.failed.Add(1)
		r.log.Error("store chunk failed; not acknowledging", zap.String("vehicle", e.Vehicle), zap.String("checkpoint", e.ID),
			zap.String("chunk", manifest.ChunkName(e.Index)), zap.Error(err))
		return Ack{}, false
	case has:
		r.duplicate.Add(1)
	default:
		r.stored.Add(1)
	}
	ack.Status = Stored
	return ack, true
}

// manifest completes the checkpoint of raw, or says what it lacks.
func (r *Receiver) manifest(ctx context.Context, e Envelope, raw []byte, ack Ack) (Ack, bool) {
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != e.SHA256 {
		return r.refuse(ack, ReasonBadHash, fmt.Errorf("checkpoint %s: manifest of %d bytes hashes to %x, the envelope says %s", e.ID, len(raw), sum, e.SHA256)), true
	}
	m, err := manifest.Parse(raw, e.ID)
	if err == nil && (m.Vehicle != e.Vehicle || m.ID != e.ID || m.StoreID != e.Store) {
		err = fmt.Errorf("checkpoint %s: the manifest names vehicle %q, store %s, checkpoint %s; its envelope %q, %s, %s",
			e.ID, m.Vehicle, m.StoreID, m.ID, e.Vehicle, e.Store, e.ID)
	}
	if err != nil {
		return r.refuse(ack, ReasonBadManifest, err), true
	}
	if done, err := r.cfg.Catalog.Has(m.Vehicle, m.StoreID, m.ID); err == nil && done {
		if old, err := r.cfg.Catalog.Raw(m.Vehicle, m.StoreID, m.ID); err == nil && bytes.Equal(old, raw) {
			r.complete.Add(1)
			ack.Status = Complete
			return ack, true
		}
	}
	missing, err := r.lacking(ctx, m, false)
	if err != nil {
		return r.localFailure(m, err)
	}
	if len(missing) == 0 {
		if verr := manifest.Verify(ctx, blob.Source(ctx, r.cfg.Blobs), m); verr != nil {
			// A chunk damaged at rest is deleted and sent again; if every
			// chunk checks, the checkpoint itself is bad.
			if missing, err = r.lacking(ctx, m, true); err != nil {
				return r.localFailure(m, err)
			}
			if len(missing) == 0 {
				return r.refuse(ack, ReasonBadCheckpoint, verr), true
			}
		}
	}
	if len(missing) > 0 {
		r.missing.Add(1)
		ack.Status, ack.Missing = Missing, ranges(missing)
		ack.Detail = fmt.Sprintf("checkpoint %s: %d of %d chunks missing: %s", m.ID, len(missing), len(m.Chunks), names(missing, 8))
		r.log.Info("checkpoint manifest with chunks missing", zap.String("vehicle", m.Vehicle), zap.String("detail", ack.Detail))
		return ack, true
	}
	if _, err := r.cfg.Catalog.Complete(raw); err != nil {
		if errors.Is(err, blob.ErrConflict) {
			return r.refuse(ack, ReasonBadManifest, err), true
		}
		return r.localFailure(m, err)
	}
	r.complete.Add(1)
	r.log.Info("checkpoint complete", zap.String("vehicle", m.Vehicle), zap.String("store", m.StoreID), zap.String("checkpoint", m.ID),
		zap.Int("chunks", len(m.Chunks)), zap.Int64("bytes", m.Bytes))
	ack.Status = Complete
	return ack, true
}

func (r *Receiver) localFailure(m *manifest.Manifest, err error) (Ack, bool) {
	r.failed.Add(1)
	r.log.Error("checkpoint manifest: local failure; not acknowledging", zap.String("vehicle", m.Vehicle), zap.String("checkpoint", m.ID), zap.Error(err))
	return Ack{}, false
}

// lacking returns the indexes of m's chunks not in the blob store; with
// read, it reads each chunk and checks it, deleting one whose bytes no
// longer match (it is then lacking too).
func (r *Receiver) lacking(ctx context.Context, m *manifest.Manifest, read bool) ([]int, error) {
	var out []int
	for i, c := range m.Chunks {
		if !read {
			has, err := r.cfg.Blobs.Has(ctx, c.SHA256)
			if err != nil {
				return nil, fmt.Errorf("checkpoint %s chunk %s: %w", m.ID, c.Name, err)
			}
			if !has {
				out = append(out, i)
			}
			continue
		}
		b, err := r.cfg.Blobs.Get(ctx, c.SHA256)
		if errors.Is(err, blob.ErrNotFound) {
			out = append(out, i)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s chunk %s: %w", m.ID, c.Name, err)
		}
		if cerr := manifest.CheckChunk(m, i, b); cerr != nil {
			r.log.Error("stored chunk damaged; deleting it", zap.Error(cerr))
			if err := r.cfg.Blobs.Delete(ctx, c.SHA256); err != nil {
				return nil, err
			}
			out = append(out, i)
		}
	}
	return out, nil
}

func names(idx []int, most int) string {
	var b strings.Builder
	for k, i := range idx {
		if k == most {
			fmt.Fprintf(&b, " and %d more", len(idx)-most)
			break
		}
		if k > 0 {
			b.WriteString(", ")
		}
		b.WriteString(manifest.ChunkName(i))
	}
	return b.String()
}

// staging holds the parts of manifests sent in more than one, until the
// last arrives: at most maxStaged manifests, the oldest dropped first
// (their vehicles send them again).
type staging struct {
	mu    sync.Mutex
	order []string
	parts map[string][][]byte
}

const maxStaged = 64

// add adds e's part; when it completes its manifest, it returns the whole
// and forgets it.
func (s *staging) add(e Envelope) ([]byte, bool) {
	if e.Count == 1 {
		return e.Data, true
	}
	key := strings.Join([]string{e.Vehicle, e.Store, e.ID, e.SHA256, fmt.Sprint(e.Count)}, "/")
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parts == nil {
		s.parts = map[string][][]byte{}
	}
	ps := s.parts[key]
	if ps == nil {
		ps = make([][]byte, e.Count)
		s.parts[key] = ps
		s.order = append(s.order, key)
		if len(s.order) > maxStaged {
			delete(s.parts, s.order[0])
			s.order = s.order[1:]
		}
	}
	ps[e.Index] = bytes.Clone(e.Data)
	var whole []byte
	for _, p := range ps {
		if p == nil {
			return nil, false
		}
		whole = append(whole, p...)
	}
	delete(s.parts, key)
	for i, k := range s.order {
		if k == key {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	return whole, true
}
