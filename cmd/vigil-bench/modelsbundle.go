package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-av/vigil/agent"
	"github.com/vigil-av/vigil/models/bundle"
	"github.com/vigil-av/vigil/models/demo"
	"github.com/vigil-av/vigil/sync/bundlelink"
)

// modelsDir is the directory of the demo's three models and primary-v2.
type modelsDir string

func (d modelsDir) path(name string) string { return filepath.Join(string(d), demo.FileName(name)) }

// findSwapModels finds the models the suite needs: in flagDir when given
// (each must be there), else in build/models when it holds primary-v2
// too, else generated into a temporary directory that cleanup removes.
func findSwapModels(flagDir string) (modelsDir, func(), error) {
	nothing := func() {}
	need := append([]string{demo.PrimaryV2}, demo.Roles...)
	if flagDir != "" {
		for _, name := range need {
			if _, err := os.Stat(modelsDir(flagDir).path(name)); err != nil {
				return "", nothing, fmt.Errorf("--models %s: %w (`make models` writes the demo's)", flagDir, err)
			}
		}
		return modelsDir(flagDir), nothing, nil
	}
	dir, cleanup, err := benchModelDir("")
	if err != nil {
		return "", nothing, err
	}
	if _, err := os.Stat(modelsDir(dir).path(demo.PrimaryV2)); err == nil {
		return modelsDir(dir), cleanup, nil
	}
	cleanup() // an older build/models, or a temporary one without the rollouts
	tmp, err := os.MkdirTemp("", "vigil-bench-models-")
	if err != nil {
		return "", nothing, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	if _, err := demo.WriteAll(tmp); err != nil {
		cleanup()
		return "", nothing, err
	}
	if _, err := demo.WriteRollouts(tmp); err != nil {
		cleanup()
		return "", nothing, err
	}
	return modelsDir(tmp), cleanup, nil
}

// benchBundle is the signed bundle the suite delivers, packed in a bundle
// store, and what the vehicle needs to take it.
type benchBundle struct {
	m         *bundle.Manifest
	hash      string
	size      int64 // its files' bytes
	modelSize int64
	storeDir  string   // the fleet's bundle store, holding only it
	chunks    [][]byte // its files' bytes in the fetcher's chunks, in order
	policy    bundle.Policy
}

// Where the bundle's files go.
const (
	bundleModel = "model.onnx"
	bundlePad   = "data/padding.bin"
)

// buildBundle makes a signed bundle under work of models' primary-v2, as
// vigil-fleet model keygen, pack and sign do, padded with a data file of
// random bytes to target bytes (no padding when the model is that large
// already), and puts it in a bundle store as an operator does (a dot name,
// then a rename). Its policy trusts the key, and asks for the contract of
// the primary the swap part starts with.
func buildBundle(work string, models modelsDir, target int64) (*benchBundle, error) {
	onnx, err := os.ReadFile(models.path(demo.PrimaryV2))
	if err != nil {
		return nil, err
	}
	src := filepath.Join(work, "bundle-src")
	if err := writeBundleFiles(src, onnx, target); err != nil {
		return nil, err
	}
	files, err := bundle.HashFiles(os.DirFS(src))
	if err != nil {
		return nil, err
	}
	contract, err := bundle.ContractFromONNX(onnx)
	if err != nil {
		return nil, err
	}
	pub, priv, _, err := bundle.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC().Truncate(time.Second)
	m := &bundle.Manifest{Format: bundle.FormatVersion, Name: "pilotnet", Version: 2, Roles: []bundle.Role{bundle.RolePrimary},
		Model: bundleModel, Contract: contract, Files: files, MinVigil: agent.Version, Providers: []string{"cpu"},
		Created: now, Expires: now.Add(24 * time.Hour)}
	if err := bundle.Sign(m, priv); err != nil {
		return nil, err
	}
	b := &benchBundle{m: m, size: bundlelink.Size(m), modelSize: int64(len(onnx)), storeDir: filepath.Join(work, "fleet-bundles")}
	if b.hash, err = m.Hash(); err != nil {
		return nil, err
	}
	if err := packInto(b.storeDir, "pilotnet-2.tar", m, src); err != nil {
		return nil, err
	}
	if b.chunks, err = chunksOf(m, src); err != nil {
		return nil, err
	}
	primary, err := os.ReadFile(models.path(demo.RolePrimary))
	if err != nil {
		return nil, err
	}
	live, err := bundle.ContractFromONNX(primary)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", models.path(demo.RolePrimary), err)
	}
	b.policy = bundle.Policy{Trusted: []ed25519.PublicKey{pub}, VigilVersion: agent.Version, Providers: []string{"cpu"},
		Contracts: map[bundle.Role]bundle.Contract{bundle.RolePrimary: live}}
	return b, nil
}

// writeBundleFiles writes the model, and padding up to target bytes in
// all, into src.
func writeBundleFiles(src string, onnx []byte, target int64) error {
	if err := os.MkdirAll(filepath.Join(src, filepath.Dir(bundlePad)), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(src, bundleModel), onnx, 0o644); err != nil {
		return err
	}
	pad := target - int64(len(onnx))
	if pad <= 0 {
		return nil
	}
	// Random bytes, so that nothing on the way could compress them.
	data := make([]byte, pad)
	r := rand.New(rand.NewPCG(8, 15))
	for i := 0; i+8 <= len(data); i += 8 {
		v := r.Uint64()
		for k := range 8 {
			data[i+k] = byte(v >> (8 * k))
		}
	}
	return os.WriteFile(filepath.Join(src, bundlePad), data, 0o644)
}

// packInto packs the bundle of m and the files in src into the store dir
// under name: written and synced under a dot name, then renamed, so that
// the store never sees half a bundle.
func packInto(dir, name string, m *bundle.Manifest, src string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name)
	fh, err := os.Create(tmp)
	if err != nil {
		return err
	}
	err = bundle.Pack(fh, m, os.DirFS(src))
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pack %s: %w", tmp, err)
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}

// chunksOf cuts m's files in src as the fetcher asks for them: the
// layout of bundlelink.Layout at the fetcher's default chunk size.
func chunksOf(m *bundle.Manifest, src string) ([][]byte, error) {
	spans, err := bundlelink.Layout(m, bundlelink.MaxChunkBytes)
	if err != nil {
		return nil, err
	}
	files := make([][]byte, len(m.Files))
	for i, f := range m.Files {
		if files[i], err = fs.ReadFile(os.DirFS(src), f.Path); err != nil {
			return nil, err
		}
	}
	chunks := make([][]byte, len(spans))
	for i, sp := range spans {
		chunks[i] = files[sp.File][sp.Offset : sp.Offset+int64(sp.Size)]
	}
	if len(chunks) == 0 {
		return nil, errors.New("the bundle has no bytes to send")
	}
	return chunks, nil
}
