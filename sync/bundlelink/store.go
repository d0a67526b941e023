package bundlelink

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/vigil-av/vigil/models/bundle"
)

// The bundle store is a directory of packed bundles, the tar files
// `vigil-fleet model pack` writes and `model sign` signs, served by their
// hash and never by their name: a file's name means nothing, and a file
// replaced by another bundle under the same name simply holds another
// hash. Only regular files named *.tar count, and not those whose name
// starts with a dot, so that a bundle copied in as .x.tar and renamed
// into place is never read half written.

// maxIndexes is how many chunk sizes' indexes the store keeps per bundle.
const maxIndexes = 8

// Store finds packed bundles in a directory by their hash. It is safe for
// concurrent use.
type Store struct {
	dir string
	log *zap.Logger

	mu       sync.RWMutex // the maps; readers of an entry's bundle hold it shared
	byHash   map[string]*entry
	byPath   map[string]*entry
	problems map[string]problem // path → why it is not served
}

// problem is a file of the store that is not served: it is opened again
// only once it changed.
type problem struct {
	info os.FileInfo
	why  string
}

// entry is one packed bundle of the store.
type entry struct {
	path string
	hash string
	info os.FileInfo // at opening: a change means another file
	b    *bundle.Bundle

	mu      sync.Mutex // guards indexes
	indexes map[int]*served
}

// served is a bundle's index at one chunk size, ready to send.
type served struct {
	x    *Index
	doc  []byte
	sum  string // the document's SHA-256
	errs error  // building it failed (a damaged file): refused until the file changes
}

// StoredBundle is a bundle the store holds.
type StoredBundle struct {
	Hash    string
	Name    string
	Version uint64
	Signed  bool
	Path    string
	Bytes   int64 // its files' total
}

// OpenStore opens the bundle store in dir, which must exist, and looks at
// what it holds. Files that are no bundle are reported by Problems and
// not served. Close releases the bundles.
func OpenStore(dir string, log *zap.Logger) (*Store, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle store: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bundle store: %s is not a directory", dir)
	}
	if log == nil {
		log = zap.NewNop()
	}
	s := &Store{dir: dir, log: log.Named("bundlestore"),
		byHash: map[string]*entry{}, byPath: map[string]*entry{}, problems: map[string]problem{}}
	if err := s.Scan(); err != nil {
		return nil, err
	}
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// Scan looks at the directory again: new and changed files are opened and
// indexed by hash, removed ones forgotten. Requests do it themselves when
// they ask for a hash the store does not hold, or when a served file
// changed.
func (s *Store) Scan() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scanLocked()
}

func (s *Store) scanLocked() error {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("bundle store %s: %w", s.dir, err)
	}
	seen := map[string]bool{}
	old := s.problems
	s.problems = map[string]problem{}
	for _, de := range ents {
		name := de.Name()
		if !strings.HasSuffix(name, ".tar") || strings.HasPrefix(name, ".") {
			continue
		}
		path := filepath.Join(s.dir, name)
		seen[path] = true
		info, err := os.Stat(path)
		if err == nil && !info.Mode().IsRegular() {
			err = errors.New("not a regular file")
		}
		if err != nil {
			s.problems[path] = problem{why: err.Error()}
			s.drop(path)
			continue
		}
		if e := s.byPath[path]; e != nil && sameFile(e.info, info) {
			continue
		}
		if p, ok := old[path]; ok && p.info != nil && sameFile(p.info, info) {
			s.problems[path] = p
			continue
		}
		s.drop(path)
		if err := s.add(path, info); err != nil {
			s.problems[path] = problem{info: info, why: err.Error()}
			s.log.Warn("not a bundle; not served", zap.String("file", path), zap.Error(err))
		}
	}
	for path := range s.byPath {
		if !seen[path] {
			s.drop(path)
		}
	}
	return nil
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

func (s *Store) add(path string, info os.FileInfo) error {
	b, err := bundle.Open(path)
	if err != nil {
		return err
	}
	if !b.Packed {
		b.Close()
		return errors.New("not a packed bundle")
	}
	hash, err := b.Manifest.Hash()
	if err != nil {
		b.Close()
		return err
	}
	e := &entry{path: path, hash: hash, info: info, b: b, indexes: map[int]*served{}}
	s.byPath[path] = e
	if old := s.byHash[hash]; old == nil || path < old.path {
		s.byHash[hash] = e
	}
	s.log.Info("bundle", zap.String("file", path), zap.String("hash", hash), zap.String("name", b.Manifest.Name),
		zap.Uint64("version", b.Manifest.Version))
	return nil
}

// drop forgets the file at path (under the exclusive lock: no reader
// holds its bundle).
func (s *Store) drop(path string) {
	e := s.byPath[path]
	if e == nil {
		return
	}
	delete(s.byPath, path)
	if s.byHash[e.hash] == e {
		delete(s.byHash, e.hash)
		for _, o := range s.byPath { // another copy of the same bundle
			if o.hash == e.hash && (s.byHash[e.hash] == nil || o.path < s.byHash[e.hash].path) {
				s.byHash[e.hash] = o
			}
		}
	}
	e.b.Close()
}

// Bundles lists the bundles the store holds, by name and version.
func (s *Store) Bundles() []StoredBundle {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []StoredBundle
	for _, e := range s.byPath {
		m := e.b.Manifest
		out = append(out, StoredBundle{Hash: e.hash, Name: m.Name, Version: m.Version, Signed: m.Signature != nil, Path: e.path, Bytes: Size(m)})
	}
	slices.SortFunc(out, func(a, b StoredBundle) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Version, b.Version); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

// Problems are the files of the last scan that are not served, and why.
func (s *Store) Problems() map[string]string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]string, len(s.problems))
	for k, v := range s.problems {
		out[k] = v.why
	}
	return out
}

// Close releases the bundles.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for path := range s.byPath {
		s.drop(path)
	}
	return nil
}

// with runs fn on the bundle whose hash is hash, holding the store shared
// so that no scan closes it meanwhile; found is false when the store
// holds no such bundle. A hash not held, or a served file that changed
// since it was opened, makes it look at the directory again first (which
// opens only new and changed files).
func (s *Store) with(hash string, fn func(e *entry)) (found bool) {
	for pass := 0; pass < 2; pass++ {
		s.mu.RLock()
		e := s.byHash[hash]
		stale := e == nil
		if e != nil {
			info, err := os.Stat(e.path)
			stale = err != nil || !sameFile(e.info, info)
		}
		if !stale || pass == 1 {
			if e != nil && !stale {
				fn(e)
			}
			s.mu.RUnlock()
			return e != nil && !stale
		}
		s.mu.RUnlock()
		s.mu.Lock()
		if err := s.scanLocked(); err != nil {
			s.log.Error("scan the bundle store", zap.Error(err))
		}
		s.mu.Unlock()
	}
	return false
}

// index is e's index at chunkBytes, built on first use: every file read
// once and checked against the manifest.
func (e *entry) index(chunkBytes int) *served {
	e.mu.Lock()
	defer e.mu.Unlock()
	if sv := e.indexes[chunkBytes]; sv != nil {
		return sv
	}
	sv := &served{}
	sv.x, sv.errs = BuildIndex(e.b.Manifest, e.hash, e.b.Files, chunkBytes)
	if sv.errs == nil {
		sv.doc, sv.errs = sv.x.Encode()
		sv.sum = sha256Hex(sv.doc)
	}
	if len(e.indexes) >= maxIndexes {
		for k := range e.indexes {
			delete(e.indexes, k)
			break
		}
	}
	e.indexes[chunkBytes] = sv
	return sv
}

// readChunk reads chunk i of x from e's files.
func (e *entry) readChunk(x *Index, i int) ([]byte, error) {
	sp := x.Spans[i]
	f := x.Manifest.Files[sp.File]
	r, err := e.b.Files.Open(f.Path)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return nil, fmt.Errorf("%s: no random access", f.Path)
	}
	buf := make([]byte, sp.Size)
	if n, err := ra.ReadAt(buf, sp.Offset); n < len(buf) {
		return nil, fmt.Errorf("read %s at %d: %w", f.Path, sp.Offset, err)
	}
	return buf, nil
}
