package checkpoint

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	kflate "github.com/klauspost/compress/flate"

	"github.com/vigil-av/vigil/storage/checkpoint/manifest"
)

// level is the deflate level: Huffman coding only, no match search
// (klauspost's encoder; any inflater reads it). On telemetry it costs a
// few percent of size against level 1 (0.70 of raw against 0.65 on the
// benchmark's records) for half the CPU time, and the checkpoint's CPU is
// taken from a vehicle whose degraded model runs on the same cores:
// level 1 made a full checkpoint 0.44-0.49x as fast as a bare Badger
// backup of the same store on the build VM.
const level = kflate.HuffmanOnly

// chunkWriter cuts the backup stream into compressed, hashed chunk files.
// Badger's backup goroutine only copies into the current part: the parts
// are compressed by a pool of workers, one per CPU, while a sequencer
// takes them in order, hashes the stream, feeds the frame parser, and
// appends each chunk to the pack file. At most inflight parts are under
// way; Write waits for room, so memory stays bounded. The chunks go one
// after the other into one file (manifest.PackName), fsynced once at the
// end: a file per chunk, created and fsynced each, cost more than the
// backup stream itself.
type chunkWriter struct {
	dir   string
	cur   []byte
	free  chan []byte   // spare part buffers
	work  chan *part    // to the compressors
	order chan *part    // to the sequencer, in stream order
	done  chan struct{} // the sequencer has finished
	fail  chan struct{} // closed on the first error
	once  sync.Once
	err   error // the first error; read after fail is closed
	wg    sync.WaitGroup
	pack  syncFile // every chunk, one after the other (manifest.PackName)

	// The sequencer's, read after done is closed.
	whole  hash.Hash
	parser io.Writer
	raw    int64
	bytes  int64
	chunks []Chunk
}

// writePack appends a chunk to the pack file, creating it first; Sync
// comes once, in finish.
func (c *chunkWriter) writePack(b []byte) error {
	if c.pack == nil {
		f, err := create(filepath.Join(c.dir, manifest.PackName))
		if err != nil {
			return err
		}
		c.pack = f
	}
	_, err := c.pack.Write(b)
	return err
}

// part is one chunk on its way: the raw bytes, then the compressed ones.
type part struct {
	raw   []byte
	out   bytes.Buffer
	sum   [sha256.Size]byte
	err   error
	ready chan struct{}
}

func newChunkWriter(dir string, parser io.Writer) *chunkWriter {
	workers := max(1, runtime.GOMAXPROCS(0))
	inflight := 2*workers + 1
	c := &chunkWriter{
		dir: dir, parser: parser, whole: sha256.New(),
		free:  make(chan []byte, inflight+1),
		work:  make(chan *part, inflight),
		order: make(chan *part, inflight),
		done:  make(chan struct{}),
		fail:  make(chan struct{}),
	}
	for range inflight + 1 {
		c.free <- make([]byte, 0, rawChunkBytes)
	}
	c.cur = <-c.free
	c.wg.Add(workers)
	for range workers {
		go c.compress()
	}
	go c.sequence()
	return c
}

func (c *chunkWriter) setErr(err error) {
	c.once.Do(func() {
		c.err = err
		close(c.fail)
	})
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), rawChunkBytes-len(c.cur))
		c.cur = append(c.cur, p[:k]...)
		p = p[k:]
		if len(c.cur) == rawChunkBytes {
			if err := c.submit(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// submit hands the current part to the pipeline and takes a spare buffer.
func (c *chunkWriter) submit() error {
	pt := &part{raw: c.cur, ready: make(chan struct{})}
	select {
	case c.order <- pt:
	case <-c.fail:
		return c.err
	}
	c.work <- pt // never blocks longer than a worker takes: work is as deep as order
	select {
	case c.cur = <-c.free:
		return nil
	case <-c.fail:
		c.cur = nil
		return c.err
	}
}

// finish submits the last part, waits for every chunk to be written and
// returns the first error.
func (c *chunkWriter) finish() error {
	if c.cur != nil && len(c.cur) > 0 {
		c.submit()
	}
	close(c.order)
	close(c.work)
	<-c.done
	c.wg.Wait()
	if c.pack != nil {
		err := c.pack.Sync()
		if cerr := c.pack.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			c.setErr(fmt.Errorf("chunk file %s: %w", manifest.PackName, err))
		}
	}
	select {
	case <-c.fail:
		return c.err
	default:
		return nil
	}
}

func (c *chunkWriter) compress() {
	defer c.wg.Done()
	var fw *kflate.Writer
	for pt := range c.work {
		if fw == nil {
			fw, pt.err = kflate.NewWriter(&pt.out, level)
		} else {
			fw.Reset(&pt.out)
		}
		if pt.err == nil {
			_, pt.err = fw.Write(pt.raw)
		}
		if pt.err == nil {
			pt.err = fw.Close()
		}
		if pt.err == nil && pt.out.Len() > MaxChunkBytes {
			pt.err = fmt.Errorf("a chunk compressed to %d bytes, over %d", pt.out.Len(), MaxChunkBytes)
		}
		pt.sum = sha256.Sum256(pt.out.Bytes())
		close(pt.ready)
	}
}

// sequence takes the parts in order: hashes and parses the stream, writes
// each chunk file, and recycles the buffers.
func (c *chunkWriter) sequence() {
	defer close(c.done)
	for pt := range c.order {
		<-pt.ready
		select {
		case <-c.fail:
			continue // drain: the Take has failed
		default:
		}
		err := pt.err
		if err == nil {
			c.whole.Write(pt.raw)
			c.raw += int64(len(pt.raw))
			_, err = c.parser.Write(pt.raw)
		}
		name := manifest.ChunkName(len(c.chunks))
		if err == nil {
			err = c.writePack(pt.out.Bytes())
		}
		if err != nil {
			c.setErr(fmt.Errorf("chunk %s: %w", name, err))
			continue
		}
		c.chunks = append(c.chunks, Chunk{Name: name, Bytes: int64(pt.out.Len()), SHA256: hex.EncodeToString(pt.sum[:])})
		c.bytes += int64(pt.out.Len())
		c.free <- pt.raw[:0]
	}
}
