package inference

import (
	"fmt"
	"reflect"
	"unsafe"

	ort "github.com/yalue/onnxruntime_go"
)

// Batches
//
// A model whose inputs and outputs have a dynamic first axis can take a
// batch of frames in one run (several cameras at once). Config.MaxBatch
// turns this on: every input and output is then preallocated for MaxBatch
// frames (TensorInfo.Shape[0] is MaxBatch, Size counts them all) and a
// request carries 1 to MaxBatch frames on the first axis of every input; the
// outputs come back with as many on theirs. One deadline covers the batch.
//
// An AdvancedSession runs with the tensors it was created with, so each
// session has, for every batch size n below MaxBatch, tensors of n frames
// over the front of the same memory and a view of the session bound to
// them: the ONNX Runtime session (and its weights) is shared, only the
// bound values differ. onnxruntime_go has no exported way to make such a
// view, so sessionView copies the session and rebinds its values through a
// mirror of the struct's layout, which checkSessionLayout verifies by
// reflection before any view is made (Load fails with max_batch if a future
// onnxruntime_go changes it). Views are never Destroyed: the session is.
// The other ways cost an allocation a run (DynamicAdvancedSession), lose
// RunOptions.Terminate (IoBinding runs) or duplicate the weights (one
// session per batch size).

// MaxBatchLimit bounds Config.MaxBatch.
const MaxBatchLimit = 256

// batch is the number of frames the model's tensors are allocated for.
func (m *ModelInfo) batch() int { return max(m.MaxBatch, 1) }

// shapeFor returns the tensor's shape for a batch of n frames. The slices
// are made at load and shared: never modify them.
func (t *TensorInfo) shapeFor(n int) []int64 {
	if t.batchShapes == nil {
		return t.Shape
	}
	return t.batchShapes[n]
}

// setBatches makes the shapes of every batch size, 1 to m.MaxBatch.
func (m *ModelInfo) setBatches() {
	if m.MaxBatch <= 1 {
		return
	}
	for _, ts := range [][]TensorInfo{m.Inputs, m.Outputs} {
		for i := range ts {
			t := &ts[i]
			t.batchShapes = make([][]int64, m.MaxBatch+1)
			for n := 1; n <= m.MaxBatch; n++ {
				s := append([]int64(nil), t.Shape...)
				s[0] = int64(n)
				t.batchShapes[n] = s
			}
		}
	}
}

// batchInputs checks, for MaxBatch > 1, that every input's first axis is
// dynamic, and sizes it to MaxBatch.
func (m *ModelInfo) batchInputs(shapes map[string][]int64) error {
	if m.MaxBatch <= 1 {
		return nil
	}
	for i := range m.Inputs {
		t := &m.Inputs[i]
		if len(t.DeclaredShape) == 0 || t.DeclaredShape[0] > 0 {
			return fmt.Errorf("%w: max_batch %d: model %s takes no batches: input %q has shape %v, whose first axis is fixed", ErrBadModel, m.MaxBatch, m.Path, t.Name, t.DeclaredShape)
		}
		if s, ok := shapes[t.Name]; ok && s[0] != int64(m.MaxBatch) {
			return fmt.Errorf("input_shapes[%s] = %v: axis 0 is the batch axis, sized by max_batch (%d)", t.Name, s, m.MaxBatch)
		}
		t.Shape[0] = int64(m.MaxBatch)
		t.Size = int(ort.Shape(t.Shape).FlattenedSize())
	}
	return nil
}

// checkBatchOutputs checks that every output has the batch on its first
// axis: shapes at the full batch and at one frame differ only there.
func (m *ModelInfo) checkBatchOutputs(full, one []ort.Shape) error {
	for i, o := range m.Outputs {
		f, s := full[i], one[i]
		ok := len(f) > 0 && len(f) == len(s) && f[0] == int64(m.MaxBatch) && s[0] == 1
		for k := 1; ok && k < len(f); k++ {
			ok = f[k] == s[k]
		}
		if !ok {
			return fmt.Errorf("%w: max_batch %d: model %s: output %q has shape %v for a batch of %d frames and %v for one; batches need the frames on the first axis of every output", ErrBadModel, m.MaxBatch, m.Path, o.Name, f, m.MaxBatch, s)
		}
	}
	return nil
}

// sessionLayout mirrors onnxruntime_go's AdvancedSession (v1.27).
type sessionLayout struct {
	ortSession  unsafe.Pointer
	inputNames  []unsafe.Pointer
	outputNames []unsafe.Pointer
	inputs      []unsafe.Pointer
	outputs     []unsafe.Pointer
}

// checkSessionLayout verifies that sessionLayout matches AdvancedSession,
// field by field, and that a Value's internals start with its OrtValue.
func checkSessionLayout() error {
	var l sessionLayout
	want := []struct {
		name   string
		kind   reflect.Kind
		offset uintptr
	}{
		{"ortSession", reflect.Pointer, unsafe.Offsetof(l.ortSession)},
		{"inputNames", reflect.Slice, unsafe.Offsetof(l.inputNames)},
		{"outputNames", reflect.Slice, unsafe.Offsetof(l.outputNames)},
		{"inputs", reflect.Slice, unsafe.Offsetof(l.inputs)},
		{"outputs", reflect.Slice, unsafe.Offsetof(l.outputs)},
	}
	st := reflect.TypeFor[ort.AdvancedSession]()
	if st.NumField() != len(want) || st.Size() != unsafe.Sizeof(l) {
		return fmt.Errorf("onnxruntime_go's AdvancedSession has %d fields in %d bytes; batches were written for %d in %d", st.NumField(), st.Size(), len(want), unsafe.Sizeof(l))
	}
	for i, w := range want {
		f := st.Field(i)
		if f.Name != w.name || f.Type.Kind() != w.kind || f.Offset != w.offset ||
			(w.kind == reflect.Slice && f.Type.Elem().Kind() != reflect.Pointer) {
			return fmt.Errorf("onnxruntime_go's AdvancedSession field %d is %s %s at %d; batches were written for %s at %d", i, f.Name, f.Type, f.Offset, w.name, w.offset)
		}
	}
	vt := reflect.TypeFor[ort.ValueInternalData]()
	if vt.NumField() != 1 || vt.Field(0).Type.Kind() != reflect.Pointer {
		return fmt.Errorf("onnxruntime_go's ValueInternalData is %v; batches were written for one OrtValue pointer", vt)
	}
	return nil
}

// sessionView returns a copy of s that runs with the given tensors instead
// of its own. It shares s's native session: never Destroy it, and destroy
// the tensors only after s.
func sessionView(s *ort.AdvancedSession, ins, outs []*ort.CustomDataTensor) *ort.AdvancedSession {
	v := new(ort.AdvancedSession)
	*v = *s
	l := (*sessionLayout)(unsafe.Pointer(v))
	l.inputs = make([]unsafe.Pointer, len(ins))
	for i, t := range ins {
		l.inputs[i] = *(*unsafe.Pointer)(unsafe.Pointer(t.GetInternals()))
	}
	l.outputs = make([]unsafe.Pointer, len(outs))
	for i, t := range outs {
		l.outputs[i] = *(*unsafe.Pointer)(unsafe.Pointer(t.GetInternals()))
	}
	return v
}
