package demo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// The input and output contract shared by the three demo models.
const (
	// InputName is the camera frame, float32 [1,3,66,200], values in [0,1].
	InputName = "frame"
	// OutputName is [steering, acceleration, braking], float32 [1,3].
	OutputName = "controls"
)

// InputShape and OutputShape are the tensor shapes of the contract. Treat
// them as constants: copy before modifying.
var (
	InputShape  = []int64{1, 3, 66, 200}
	OutputShape = []int64{1, 3}
)

// InputRange is the [min, max] of every element of InputName: a camera
// frame scaled to [0,1]. Every model records it as JSON under
// MetaInputRangePrefix+InputName, and Vigil refuses frames outside it.
var InputRange = [2]float32{0, 1}

// OutputRanges is the [min, max] of each element of OutputName, in order:
// steering (Tanh), acceleration (Sigmoid), braking (Sigmoid). Every model
// records it as JSON under MetaOutputRangePrefix+OutputName.
var OutputRanges = [][2]float32{{-1, 1}, {0, 1}, {0, 1}}

// Metadata keys every demo model carries in metadata_props.
const (
	MetaName    = "vigil.name"
	MetaVersion = "vigil.version"
	MetaRole    = "vigil.role"
	MetaSeed    = "vigil.seed"
	// MetaOutputRangePrefix followed by an output name holds the JSON list
	// of per-element [min,max] pairs of that output.
	MetaOutputRangePrefix = "vigil.output_range."
	// MetaInputRangePrefix followed by an input name holds the JSON
	// [min,max] of every element of that input.
	MetaInputRangePrefix = "vigil.input_range."
)

// outputRangeJSON and inputRangeJSON are OutputRanges and InputRange as
// stored in the metadata.
const (
	outputRangeJSON = "[[-1,1],[0,1],[0,1]]"
	inputRangeJSON  = "[0,1]"
)

// Version is the vigil.version of the demo models. Bump it whenever a
// generator change alters a model's bytes.
const Version = "1.1.0"

// Model roles, as recorded under MetaRole.
const (
	RolePrimary  = "primary"
	RoleShadow   = "shadow"
	RoleDegraded = "degraded"
)

// Roles lists the demo models in the order WriteAll writes them.
var Roles = []string{RolePrimary, RoleShadow, RoleDegraded}

// ErrUnknownRole is returned by Generate for a role not in Roles.
var ErrUnknownRole = errors.New("unknown model role")

// Generate returns the serialised model for a role in Roles.
func Generate(role string) ([]byte, error) {
	switch role {
	case RolePrimary:
		return Primary()
	case RoleShadow:
		return Shadow()
	case RoleDegraded:
		return Degraded()
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknownRole, role, Roles)
}

// GenerateBatched returns the model for a role in Roles in its multi-camera
// variant: the same network and weights, with a dynamic first axis on the
// input and the output ("batch"), so that one run takes a batch of frames
// [N,3,66,200] and answers [N,3].
func GenerateBatched(role string) ([]byte, error) {
	switch role {
	case RolePrimary:
		return primary(true)
	case RoleShadow:
		return shadow(true)
	case RoleDegraded:
		return degraded(true)
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknownRole, role, Roles)
}

// FileName is the file WriteAll writes for a role, e.g. "primary.onnx".
func FileName(role string) string {
	return role + ".onnx"
}

// WriteAll generates every model in Roles and writes each to
// dir/FileName(role), creating dir if needed. Each file is written to a
// temporary file in dir, synced and renamed into place, so a reader never
// sees a partial model. It returns the paths in Roles order.
func WriteAll(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create model directory: %w", err)
	}
	paths := make([]string, 0, len(Roles))
	for _, role := range Roles {
		data, err := Generate(role)
		if err != nil {
			return paths, fmt.Errorf("generate %s model: %w", role, err)
		}
		path := filepath.Join(dir, FileName(role))
		if err := writeFileAtomic(path, data); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}

func writeFileAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close() // already failing; the write error is the one to report
			_ = os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, path, err)
	}
	// Make the rename itself durable.
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	if err = d.Sync(); err != nil {
		_ = d.Close()
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	if err = d.Close(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
