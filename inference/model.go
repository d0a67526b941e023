package inference

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrBadModel is wrapped by Load when a model file is missing, empty, or not
// an ONNX model that ONNX Runtime can load.
var ErrBadModel = errors.New("bad model")

// Metadata keys Vigil reads from a model's metadata_props. Models without
// them still load; they just carry no declared output ranges.
const (
	MetaName        = "vigil.name"
	MetaVersion     = "vigil.version"
	MetaRole        = "vigil.role"
	MetaRangePrefix = "vigil.output_range." // + output name: JSON [[min,max],...] or [min,max]
)

// Unversioned is the Version of a model that declares none: no vigil.version
// in its metadata and no ONNX model_version (which ONNX Runtime then reports
// as the largest int64).
const Unversioned = "unversioned"

// TensorInfo describes one input or output of a loaded model. Shape is the
// concrete shape the backend runs with (for a model that takes batches, with
// the largest batch on the first axis); DeclaredShape is what the model file
// says, where -1 marks a dynamic axis. Vigil's models are float32 throughout;
// other numeric element types are carried as raw bytes.
type TensorInfo struct {
	Name          string  `json:"name"`
	DType         DType   `json:"dtype"`
	Shape         []int64 `json:"shape"`
	DeclaredShape []int64 `json:"declared_shape"`
	// Size is the number of elements of Shape.
	Size int `json:"size"`

	batchShapes [][]int64 // by batch size, when the model takes batches
}

// Range is the inclusive interval an output element must fall in.
type Range struct{ Min, Max float32 }

// ModelInfo is what Vigil learned about a model when it loaded it.
type ModelInfo struct {
	Path    string `json:"path"`
	Name    string `json:"name"`
	Version string `json:"version"`
	Role    string `json:"role"`
	// MaxBatch is the largest batch of frames a request may carry on the
	// first axis of every input (Config.MaxBatch); 0 when the model runs
	// one shape only.
	MaxBatch int               `json:"max_batch,omitempty"`
	Inputs   []TensorInfo      `json:"inputs"`
	Outputs  []TensorInfo      `json:"outputs"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// Ranges holds, per output index, either nil (no declared range), one
	// range for every element, or one range per element.
	Ranges [][]Range `json:"-"`
	// InputRanges holds, per input index, the declared range of its
	// values (MetaInputRangePrefix), or nil.
	InputRanges []*Range `json:"-"`
}

// readModel reads a model file and its description through ONNX Runtime,
// failing with ErrBadModel for anything that is not a loadable model.
func readModel(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: model %s does not exist (generate the demo models with `make models`)", ErrBadModel, path)
		}
		return nil, fmt.Errorf("%w: read model %s: %v", ErrBadModel, path, err)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("%w: model %s is empty", ErrBadModel, path)
	}
	return data, nil
}

// describeModel reads inputs, outputs and metadata from model bytes. It
// accepts only models whose inputs and outputs are all float32 tensors.
func describeModel(path string, data []byte, shapes map[string][]int64, maxBatch int) (ModelInfo, error) {
	info := ModelInfo{Path: path}
	if maxBatch > 1 {
		info.MaxBatch = maxBatch
	}
	ins, outs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return info, fmt.Errorf("%w: model %s is not an ONNX model ONNX Runtime can load (truncated or corrupt?): %v", ErrBadModel, path, err)
	}
	if len(ins) == 0 || len(outs) == 0 {
		return info, fmt.Errorf("%w: model %s has %d inputs and %d outputs; Vigil needs at least one of each", ErrBadModel, path, len(ins), len(outs))
	}
	for name := range shapes {
		found := false
		for _, in := range ins {
			found = found || in.Name == name
		}
		if !found {
			return info, fmt.Errorf("input_shapes names %q, but model %s has no such input (inputs: %s)", name, path, ioNames(ins))
		}
	}
	for _, in := range ins {
		t, err := tensorInfo(path, "input", in)
		if err != nil {
			return info, err
		}
		if err := t.fixShape(path, shapes[in.Name]); err != nil {
			return info, err
		}
		info.Inputs = append(info.Inputs, t)
	}
	if err := info.batchInputs(shapes); err != nil {
		return info, err
	}
	for _, out := range outs {
		t, err := tensorInfo(path, "output", out)
		if err != nil {
			return info, err
		}
		info.Outputs = append(info.Outputs, t)
	}
	if err := info.readMetadata(data); err != nil {
		return info, err
	}
	return info, nil
}

func ioNames(list []ort.InputOutputInfo) string {
	names := make([]string, len(list))
	for i, x := range list {
		names[i] = x.Name
	}
	return strings.Join(names, ", ")
}

func tensorInfo(path, kind string, x ort.InputOutputInfo) (TensorInfo, error) {
	if x.OrtValueType != ort.ONNXTypeTensor {
		return TensorInfo{}, fmt.Errorf("%w: model %s: %s %q is a %s; Vigil backends take tensors only", ErrBadModel, path, kind, x.Name, x.OrtValueType)
	}
	dt := DType(x.DataType)
	if x.DataType == ort.TensorElementDataTypeUndefined || dt.Size() == 0 {
		return TensorInfo{}, fmt.Errorf("%w: model %s: %s %q has element type %s, which Vigil backends do not take", ErrBadModel, path, kind, x.Name, x.DataType)
	}
	decl := []int64(x.Dimensions.Clone())
	return TensorInfo{Name: x.Name, DType: dt, DeclaredShape: decl, Shape: append([]int64(nil), decl...)}, nil
}

// fixShape settles dynamic axes: from the override when given (which must
// agree with every fixed axis), else 1.
func (t *TensorInfo) fixShape(path string, override []int64) error {
	if override != nil {
		if len(override) != len(t.DeclaredShape) {
			return fmt.Errorf("input_shapes[%s] = %v has %d axes; model %s declares %v", t.Name, override, len(override), path, t.DeclaredShape)
		}
		for i, d := range override {
			if d <= 0 {
				return fmt.Errorf("input_shapes[%s] = %v: axis %d must be positive", t.Name, override, i)
			}
			if t.DeclaredShape[i] > 0 && t.DeclaredShape[i] != d {
				return fmt.Errorf("input_shapes[%s] = %v: axis %d is fixed at %d in model %s", t.Name, override, i, t.DeclaredShape[i], path)
			}
		}
		copy(t.Shape, override)
	}
	for i, d := range t.Shape {
		if d <= 0 {
			t.Shape[i] = 1
		}
	}
	t.Size = int(ort.Shape(t.Shape).FlattenedSize())
	return nil
}

func (info *ModelInfo) readMetadata(data []byte) error {
	md, err := ort.GetModelMetadataWithONNXData(data)
	if err != nil {
		return fmt.Errorf("%w: model %s: read metadata: %v", ErrBadModel, info.Path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return fmt.Errorf("%w: model %s: read metadata keys: %v", ErrBadModel, info.Path, err)
	}
	info.Metadata = make(map[string]string, len(keys))
	for _, k := range keys {
		v, _, err := md.LookupCustomMetadataMap(k)
		if err != nil {
			return fmt.Errorf("%w: model %s: read metadata %q: %v", ErrBadModel, info.Path, k, err)
		}
		info.Metadata[k] = v
	}
	info.Name = info.Metadata[MetaName]
	info.Version = info.Metadata[MetaVersion]
	info.Role = info.Metadata[MetaRole]
	if info.Name == "" {
		info.Name, _ = md.GetGraphName()
	}
	if info.Version == "" {
		info.Version = Unversioned
		if v, err := md.GetVersion(); err == nil && v > 0 && v != math.MaxInt64 {
			info.Version = strconv.FormatInt(v, 10)
		}
	}
	return nil
}

// readRanges parses the declared output ranges; output sizes must be known.
func (info *ModelInfo) readRanges() error {
	info.Ranges = make([][]Range, len(info.Outputs))
	for k, v := range info.Metadata {
		name, ok := strings.CutPrefix(k, MetaRangePrefix)
		if !ok {
			continue
		}
		idx := -1
		for i, o := range info.Outputs {
			if o.Name == name {
				idx = i
			}
		}
		if idx < 0 {
			return fmt.Errorf("%w: model %s: metadata %s names no output of the model", ErrBadModel, info.Path, k)
		}
		if info.Outputs[idx].DType != Float32 {
			return fmt.Errorf("%w: model %s: metadata %s: ranges apply to float32 outputs only", ErrBadModel, info.Path, k)
		}
		r, err := parseRanges(v, info.Outputs[idx].Size/info.batch())
		if err != nil {
			return fmt.Errorf("%w: model %s: metadata %s: %v", ErrBadModel, info.Path, k, err)
		}
		info.Ranges[idx] = r
	}
	return nil
}

// parseRanges reads "[min,max]" (every element) or "[[min,max],...]" (one
// pair per element).
func parseRanges(s string, size int) ([]Range, error) {
	var one [2]float32
	if err := json.Unmarshal([]byte(s), &one); err == nil {
		if one[0] > one[1] {
			return nil, fmt.Errorf("range %v has min above max", one)
		}
		return []Range{{one[0], one[1]}}, nil
	}
	var each [][2]float32
	if err := json.Unmarshal([]byte(s), &each); err != nil {
		return nil, fmt.Errorf("want [min,max] or [[min,max],...], got %q", s)
	}
	if len(each) != size {
		return nil, fmt.Errorf("%d ranges for an output of %d elements", len(each), size)
	}
	out := make([]Range, len(each))
	for i, p := range each {
		if p[0] > p[1] {
			return nil, fmt.Errorf("range %d %v has min above max", i, p)
		}
		out[i] = Range{p[0], p[1]}
	}
	return out, nil
}
