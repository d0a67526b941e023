package bundlelink

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vigil-av/vigil/models/bundle"
)

// A download's staging directory, Dir/<hash>/, holds:
//
//	bundle/         bundle.json and the bundle's files, at their paths:
//	                what bundle.Open reads once every chunk is staged
//	index.json      the index document (the chunk table)
//	progress.json   the chunk size and a bitmap of the chunks staged
//
// A chunk's bit is set only after its bytes were written and the file
// synced, and progress.json is replaced atomically (a temporary file,
// synced, renamed, the directory synced): after a crash, every chunk the
// bitmap holds is on disk, and a chunk it lacks is fetched again.
// progress.json is written last when a download starts, so a directory
// without a readable one (a creation cut short) is removed and started
// over.
const (
	stagedBundle = "bundle"
	indexName    = "index.json"
	progressName = "progress.json"
)

// writeAt writes a chunk into a staged file; a test's seam for a disk
// that fills up.
var writeAt = func(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) }

// progressFile is progress.json.
type progressFile struct {
	Format     int       `json:"format"`
	Bundle     string    `json:"bundle"`
	ChunkBytes int       `json:"chunk_bytes"`
	Chunks     int       `json:"chunks"`
	Done       []byte    `json:"done"` // bit i: chunk i is staged
	Complete   bool      `json:"complete,omitempty"`
	Updated    time.Time `json:"updated"`
}

func (p *progressFile) done(i int) bool { return p.Done[i/8]&(1<<(i%8)) != 0 }
func (p *progressFile) set(i int)       { p.Done[i/8] |= 1 << (i % 8) }

// staging is an open staging directory.
type staging struct {
	dir   string
	x     *Index
	p     *progressFile
	files map[int]*os.File // open staged files, by index in Manifest.Files
	dirty map[int]bool     // written since the last sync
	ndone int              // chunks staged
	bdone int64            // their bytes
	from  int              // no chunk before it is missing
}

// openStaging opens root/<hash> as a download left it: nil when there is
// none, or when it is incomplete or damaged (then it is removed, and the
// download starts over).
func openStaging(root, hash string) (*staging, error) {
	dir := filepath.Join(root, hash)
	raw, err := os.ReadFile(filepath.Join(dir, progressName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, startOver(dir)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle staging %s: %w", dir, err)
	}
	var p progressFile
	if json.Unmarshal(raw, &p) != nil || p.Format != 1 || p.Bundle != hash || !ValidChunkBytes(p.ChunkBytes) || len(p.Done) != (p.Chunks+7)/8 {
		return nil, startOver(dir)
	}
	doc, err := os.ReadFile(filepath.Join(dir, indexName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("bundle staging %s: %w", dir, err)
	}
	x, perr := ParseIndex(doc, hash, p.ChunkBytes)
	if err != nil || perr != nil || len(x.Spans) != p.Chunks {
		return nil, startOver(dir)
	}
	st := &staging{dir: dir, x: x, p: &p, files: map[int]*os.File{}, dirty: map[int]bool{}}
	for i, sp := range x.Spans {
		if p.done(i) {
			st.ndone++
			st.bdone += int64(sp.Size)
		}
	}
	st.advance()
	return st, nil
}

// advance moves from past the staged chunks.
func (st *staging) advance() {
	for st.from < st.p.Chunks && st.p.done(st.from) {
		st.from++
	}
}

func startOver(dir string) error {
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("bundle staging: remove the unusable %s: %w", dir, err)
	}
	return nil
}

// createStaging makes root/<hash> for x: the bundle's files at their
// sizes (sparse), bundle.json, index.json, then progress.json. On an
// error it removes what it made.
func createStaging(root string, x *Index, now time.Time) (*staging, error) {
	dir := filepath.Join(root, x.Hash)
	if err := startOver(dir); err != nil {
		return nil, err
	}
	st := &staging{dir: dir, x: x, files: map[int]*os.File{}, dirty: map[int]bool{},
		p: &progressFile{Format: 1, Bundle: x.Hash, ChunkBytes: x.ChunkBytes, Chunks: len(x.Spans), Done: make([]byte, (len(x.Spans)+7)/8)}}
	st.p.Complete = len(x.Spans) == 0
	err := st.create(root)
	if err == nil {
		err = st.save(now)
	}
	if err != nil {
		st.close()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("bundle staging %s: %w", dir, err)
	}
	return st, nil
}

func (st *staging) create(root string) error {
	files := filepath.Join(st.dir, stagedBundle)
	dirs := map[string]bool{root: true, st.dir: true, files: true}
	if err := os.MkdirAll(files, 0o755); err != nil {
		return err
	}
	for _, f := range st.x.Manifest.Files {
		path := filepath.Join(files, filepath.FromSlash(f.Path))
		for d := filepath.Dir(path); d != files; d = filepath.Dir(d) {
			dirs[d] = true
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := writeFile(path, nil, f.Size); err != nil {
			return err
		}
	}
	if err := writeFile(filepath.Join(files, bundle.ManifestName), st.x.ManifestJSON, -1); err != nil {
		return err
	}
	doc, err := st.x.Encode()
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(st.dir, indexName), doc, -1); err != nil {
		return err
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// writeFile writes data to a new file at path, sized to size when it is
// not negative, and syncs it.
func writeFile(path string, data []byte, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && size >= 0 {
		err = f.Truncate(size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// write writes chunk i's bytes into its file (not synced yet).
func (st *staging) write(i int, data []byte) error {
	sp := st.x.Spans[i]
	f := st.files[sp.File]
	if f == nil {
		var err error
		path := filepath.Join(st.dir, stagedBundle, filepath.FromSlash(st.x.Manifest.Files[sp.File].Path))
		if f, err = os.OpenFile(path, os.O_RDWR, 0); err != nil {
			return fmt.Errorf("bundle staging: %w", err)
		}
		st.files[sp.File] = f
	}
	st.dirty[sp.File] = true
	if _, err := writeAt(f, data, sp.Offset); err != nil {
		return fmt.Errorf("bundle staging: write chunk %d into %s: %w", i, f.Name(), err)
	}
	return nil
}

// commit syncs the files written since the last commit, marks chunks
// staged and saves the progress.
func (st *staging) commit(chunks []int, now time.Time) error {
	for k := range st.dirty {
		if err := st.files[k].Sync(); err != nil {
			return fmt.Errorf("bundle staging: sync %s: %w", st.files[k].Name(), err)
		}
		delete(st.dirty, k)
	}
	for _, i := range chunks {
		if !st.p.done(i) {
			st.p.set(i)
			st.ndone++
			st.bdone += int64(st.x.Spans[i].Size)
		}
	}
	st.advance()
	st.p.Complete = st.ndone == st.p.Chunks
	return st.save(now)
}

// save writes progress.json atomically.
func (st *staging) save(now time.Time) error {
	st.p.Updated = now.UTC()
	b, err := json.Marshal(st.p)
	if err != nil {
		return err
	}
	tmp := filepath.Join(st.dir, "."+progressName+".tmp")
	err = writeFile(tmp, b, -1)
	if err == nil {
		err = os.Rename(tmp, filepath.Join(st.dir, progressName))
	}
	if err == nil {
		err = syncDir(st.dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("bundle staging: save %s: %w", progressName, err)
	}
	return nil
}

// doneBytes is the bytes of the staged chunks.
func (st *staging) doneBytes() int64 { return st.bdone }

func (st *staging) close() {
	for _, f := range st.files {
		f.Close()
	}
	st.files = map[int]*os.File{}
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

// diskError makes a write's running out of space ErrDiskFull.
func diskError(err error, x *Index) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: bundle %s v%d (%.12s): %w; what is staged is kept: free some space, then fetch again",
			ErrDiskFull, x.Manifest.Name, x.Manifest.Version, x.Hash, err)
	}
	return err
}

// statfsFree is FetcherConfig.FreeSpace's default.
func statfsFree(path string) (uint64, error) {
	var s syscall.Statfs_t
	if err := syscall.Statfs(path, &s); err != nil {
		return 0, err
	}
	return s.Bavail * uint64(s.Bsize), nil
}
