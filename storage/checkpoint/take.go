package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-av/vigil/storage"
	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// rawChunkBytes is how much of the backup stream goes into one chunk:
// deflate adds at most a few bytes per 64 KiB to data it cannot compress,
// so a chunk of this much never exceeds MaxChunkBytes.
const rawChunkBytes = MaxChunkBytes - 1<<10

// bitDelete is Badger's tombstone bit in a KV's meta (badger's
// structs.go); a restore applies tombstones, so the manifest must too.
const bitDelete = 1

// Options says what checkpoint to take.
type Options struct {
	Dir     string // the chain's directory; created if missing
	Kind    Kind   // what to take; Take may take a full instead (Manifest.ForcedFull)
	Vehicle string
	// Created is the checkpoint's creation time, recorded as given.
	Created       time.Time
	DaemonVersion string
}

// Take writes a checkpoint of store into opts.Dir while appends go on and
// returns its manifest. The base is the newest checkpoint in the directory
// (incremental) or the newest full (differential); without a usable one,
// or after the store dropped buckets, the checkpoint is full. One Take at
// a time per directory: the caller serialises them.
func Take(ctx context.Context, store *storage.Store, opts Options) (*Manifest, error) {
	if !opts.Kind.Valid() {
		return nil, fmt.Errorf("checkpoint: kind %q: want full, incremental or differential", opts.Kind)
	}
	if opts.Vehicle == "" {
		return nil, errors.New("checkpoint: no vehicle")
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if err := removeStale(opts.Dir); err != nil {
		return nil, err
	}
	ms, err := List(opts.Dir)
	if err != nil {
		return nil, err
	}
	storeID := fmt.Sprintf("%016x", store.StoreID())
	var base *Manifest
	forced := ""
	var seq uint64 = 1
	if n := len(ms); n > 0 {
		seq = ms[n-1].Seq + 1
		for _, m := range ms {
			if m.Vehicle != opts.Vehicle {
				return nil, fmt.Errorf("checkpoint: %s in %s is of vehicle %q, not %q", m.ID, opts.Dir, m.Vehicle, opts.Vehicle)
			}
		}
	}
	switch opts.Kind {
	case Incremental:
		if n := len(ms); n > 0 {
			base = ms[n-1]
		}
	case Differential:
		for _, m := range ms {
			if m.Kind == Full {
				base = m
			}
		}
	}
	kind, since := opts.Kind, uint64(0)
	if opts.Kind != Full {
		switch {
		case base == nil:
			forced = "no base checkpoint"
		case base.StoreID != storeID:
			forced = fmt.Sprintf("base %s is of store %s", base.ID, base.StoreID)
		case base.Boot != store.Boot():
			forced = fmt.Sprintf("base %s was taken in boot %d (drops since are unknown)", base.ID, base.Boot)
		default:
			since = base.SnapshotTS
		}
		if forced != "" {
			kind, base = Full, nil
		}
	}
	id := manifest.ID(seq, kind)
	tmp := filepath.Join(opts.Dir, ".tmp-"+id)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	m, err := write(ctx, store, tmp, since)
	if err == nil && base != nil && m.Drops != base.Drops {
		// Buckets were dropped since the base: without tombstones the
		// incremental would restore them. Take a full instead.
		forced = fmt.Sprintf("%d bucket drops since base %s", m.Drops-base.Drops, base.ID)
		os.RemoveAll(tmp)
		kind, base, since = Full, nil, 0
		id = manifest.ID(seq, kind)
		tmp = filepath.Join(opts.Dir, ".tmp-"+id)
		if err = os.Mkdir(tmp, 0o755); err == nil {
			m, err = write(ctx, store, tmp, since)
		}
	}
	if err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	m.Format, m.Vehicle, m.StoreID, m.ID, m.Seq, m.Kind = FormatVersion, opts.Vehicle, storeID, id, seq, kind
	m.ForcedFull, m.Since, m.Created, m.DaemonVersion = forced, since, opts.Created, opts.DaemonVersion
	var baseStreams []StreamInfo
	if base != nil {
		m.Base, baseStreams = base.ID, base.Streams
	}
	m.Streams = merge(baseStreams, m.names, m.delta)
	if err := commit(tmp, filepath.Join(opts.Dir, id), m); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("checkpoint %s: %w", id, err)
	}
	return &m.Manifest, nil
}

// removeStale deletes checkpoints a crash left half written.
func removeStale(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("checkpoint: remove a half-written checkpoint: %w", err)
			}
		}
	}
	return nil
}

// taken is a manifest being built, with what merge needs.
type taken struct {
	Manifest
	names map[uint8]string
	delta map[uint8]*seqSet
}

// write runs the backup into chunk files in dir.
func write(ctx context.Context, store *storage.Store, dir string, since uint64) (*taken, error) {
	fp := &frameParser{delta: map[uint8]*seqSet{}}
	cw := newChunkWriter(dir, fp)
	info, err := store.Backup(&ctxWriter{ctx: ctx, w: cw}, since)
	if ferr := cw.finish(); ferr != nil {
		// A chunk that could not be written is the cause: Badger's stream
		// reports it as its context cancelled.
		err = ferr
	}
	if err == nil {
		err = fp.finish()
	}
	if err != nil {
		return nil, err
	}
	t := &taken{names: info.Streams, delta: fp.delta}
	t.SnapshotTS, t.Boot, t.Drops = info.SnapshotTS, info.Boot, info.Drops
	t.Entries, t.RawBytes, t.Bytes, t.Chunks = fp.entries, cw.raw, cw.bytes, cw.chunks
	t.SHA256 = hex.EncodeToString(cw.whole.Sum(nil))
	if t.Chunks == nil {
		t.Chunks = []Chunk{}
	}
	return t, nil
}

// commit writes the manifest, syncs the directory and renames it into
// place.
func commit(tmp, final string, m *taken) error {
	b, err := json.MarshalIndent(&m.Manifest, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileSync(filepath.Join(tmp, ManifestName), append(b, '\n')); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return err
	}
	return syncDir(filepath.Dir(final))
}

// syncFile is what writeFileSync writes through: an *os.File, or in
// tests a file whose disk fills up.
type syncFile interface {
	io.Writer
	Sync() error
	Close() error
}

// create opens a new file for writeFileSync; tests replace it to inject
// a full disk.
var create = func(name string) (syncFile, error) { return os.Create(name) }

func writeFileSync(name string, b []byte) error {
	f, err := create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxWriter fails writes once ctx ends, which stops the backup.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c *ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// frameParser reads Badger's backup frames (a little-endian uint64
// length, then a protobuf KVList) and notes the records they hold. It
// decodes only what it needs (each KV's key and meta) with protowire,
// skipping the values, and parses whole frames in place: only a frame
// cut by the end of a write is copied.
type frameParser struct {
	buf     []byte
	entries uint64
	delta   map[uint8]*seqSet
	prev    []byte // the previous KV's key, a copy
}

func (f *frameParser) Write(p []byte) (int, error) {
	n := len(p)
	if len(f.buf) > 0 {
		// Complete the frame the last write cut.
		if len(f.buf) < 8 {
			k := min(8-len(f.buf), len(p))
			f.buf, p = append(f.buf, p[:k]...), p[k:]
			if len(f.buf) < 8 {
				return n, nil
			}
		}
		sz := binary.LittleEndian.Uint64(f.buf)
		need := 8 + sz - uint64(len(f.buf))
		if uint64(len(p)) < need {
			f.buf = append(f.buf, p...)
			return n, nil
		}
		f.buf, p = append(f.buf, p[:need]...), p[need:]
		if err := f.frame(f.buf[8:]); err != nil {
			return 0, err
		}
		f.buf = f.buf[:0]
	}
	for len(p) >= 8 {
		sz := binary.LittleEndian.Uint64(p)
		if uint64(len(p)-8) < sz {
			break
		}
		if err := f.frame(p[8 : 8+sz]); err != nil {
			return 0, err
		}
		p = p[8+sz:]
	}
	f.buf = append(f.buf, p...)
	return n, nil
}

// frame parses one KVList.
func (f *frameParser) frame(b []byte) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("parse backup frame: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			kv, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("parse backup frame: %w", protowire.ParseError(n))
			}
			if err := f.kv(kv); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("parse backup frame: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// kv notes one KV: its key (field 1), value (field 2) and meta (field 6).
func (f *frameParser) kv(b []byte) error {
	var key, value, meta []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("parse backup KV: %w", protowire.ParseError(n))
		}
		b = b[n:]
		if (num == 1 || num == 2 || num == 6) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("parse backup KV: %w", protowire.ParseError(n))
			}
			switch num {
			case 1:
				key = v
			case 2:
				value = v
			default:
				meta = v
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("parse backup KV: %w", protowire.ParseError(n))
		}
		b = b[n:]
	}
	f.entries++
	// A key's versions come newest first; the newest decides.
	newest := !bytes.Equal(key, f.prev)
	f.prev = append(f.prev[:0], key...)
	id, last, ok := storage.ParseRecordKey(key)
	if !ok || !newest {
		return nil
	}
	s := f.delta[id]
	if s == nil {
		s = &seqSet{}
		f.delta[id] = s
	}
	if len(meta) > 0 && meta[0]&bitDelete != 0 {
		// The store deletes records only with DropPrefix, which leaves no
		// tombstone; a deleted key names its last seq.
		s.deleted = append(s.deleted, last)
		return nil
	}
	_, first, _, ok := storage.ParseRecordEntry(key, value)
	if !ok {
		return fmt.Errorf("record key %x: a value of %d bytes that is not a segment", key, len(value))
	}
	s.added = append(s.added, Range{First: first, Last: last})
	return nil
}

func (f *frameParser) finish() error {
	if len(f.buf) != 0 {
		return fmt.Errorf("backup stream ends inside a frame (%d bytes left)", len(f.buf))
	}
	return nil
}
