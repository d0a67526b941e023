package inference

import (
	"fmt"
	"strings"
)

// tensorIndex finds name among want; requests usually list tensors in model
// order, so position i is tried first.
func tensorIndex(want []TensorInfo, name string, i int) int {
	if i < len(want) && want[i].Name == name {
		return i
	}
	for j := range want {
		if want[j].Name == name {
			return j
		}
	}
	return -1
}

// checkTensors checks a request's tensors against a model's inputs: each
// input once, by name, with its dtype, shape and length. It returns the
// number of frames: with maxBatch above 1, the first axis of every input,
// 1 to maxBatch and the same for all; else 1.
func checkTensors(want []TensorInfo, maxBatch int, in []Tensor) (int, error) {
	if len(in) != len(want) {
		return 0, &InputError{Expected: fmt.Sprintf("%d input tensors (%s)", len(want), tensorNames(want)), Got: fmt.Sprint(len(in))}
	}
	batch := 0
	for i := range in {
		n, err := checkTensor(want, maxBatch, in, i)
		if err != nil {
			return 0, err
		}
		if batch != 0 && n != batch {
			return 0, &InputError{Input: in[i].Name, Expected: fmt.Sprintf("a batch of %d frames, as input %q has", batch, in[0].Name), Got: fmt.Sprintf("shape %v", in[i].Shape)}
		}
		batch = n
	}
	return batch, nil
}

// checkTensor checks in[i] and returns its number of frames.
func checkTensor(want []TensorInfo, maxBatch int, in []Tensor, i int) (int, error) {
	t := &in[i]
	j := tensorIndex(want, t.Name, i)
	if j < 0 {
		return 0, &InputError{Input: t.Name, Expected: "one of the model's inputs (" + tensorNames(want) + ")", Got: "an unknown name"}
	}
	for k := range i {
		if in[k].Name == t.Name {
			return 0, &InputError{Input: t.Name, Expected: "each input once", Got: "it twice"}
		}
	}
	w := &want[j]
	if t.DType.normal() != w.DType {
		return 0, &InputError{Input: t.Name, Expected: "dtype " + w.DType.String(), Got: "dtype " + t.DType.String()}
	}
	n, size := 1, w.Size
	if maxBatch > 1 {
		if len(t.Shape) > 0 && t.Shape[0] >= 1 && t.Shape[0] <= int64(maxBatch) {
			n = int(t.Shape[0])
		}
		if !sameShape(t.Shape, w.shapeFor(n)) {
			return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("shape [N%s] with a batch of N = 1 to %d frames", dims(w.Shape[1:]), maxBatch), Got: fmt.Sprintf("shape %v", t.Shape)}
		}
		size = w.Size / maxBatch * n
	} else if !sameShape(t.Shape, w.Shape) {
		return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("shape %v%s", w.Shape, batchHint(w, t.Shape)), Got: fmt.Sprintf("shape %v", t.Shape)}
	}
	if w.DType == Float32 {
		if len(t.Data) != size {
			return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("%d float32 values for shape %v", size, t.Shape), Got: fmt.Sprint(len(t.Data))}
		}
	} else if len(t.Raw) != size*w.DType.Size() {
		return 0, &InputError{Input: t.Name, Expected: fmt.Sprintf("%d bytes of %s for shape %v", size*w.DType.Size(), w.DType, t.Shape), Got: fmt.Sprintf("%d bytes", len(t.Raw))}
	}
	return n, nil
}

// batchHint explains a request that differs from a model without batches
// on the first axis only.
func batchHint(w *TensorInfo, got []int64) string {
	if len(got) != len(w.Shape) || len(got) == 0 || !sameShape(got[1:], w.Shape[1:]) {
		return ""
	}
	if len(w.DeclaredShape) > 0 && w.DeclaredShape[0] <= 0 {
		return " (the model's first axis is dynamic, but max_batch is not set: one shape only)"
	}
	return fmt.Sprintf(" (the model's first axis is fixed at %d: it takes no batches)", w.Shape[0])
}

func dims(d []int64) string {
	var sb strings.Builder
	for _, x := range d {
		fmt.Fprintf(&sb, " %d", x)
	}
	return sb.String()
}

func tensorNames(ts []TensorInfo) string {
	var sb strings.Builder
	for i, t := range ts {
		if i > 0 {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%s %v", t.Name, t.Shape)
	}
	return sb.String()
}

func sameShape(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sameContract(a, b Info) error {
	if a.Model.MaxBatch != b.Model.MaxBatch {
		return fmt.Errorf("max_batch %d vs %d", a.Model.MaxBatch, b.Model.MaxBatch)
	}
	if err := sameTensors("input", a.Model.Inputs, b.Model.Inputs); err != nil {
		return err
	}
	return sameTensors("output", a.Model.Outputs, b.Model.Outputs)
}

func sameTensors(kind string, a, b []TensorInfo) error {
	if len(a) != len(b) {
		return fmt.Errorf("%d %ss vs %d", len(a), kind, len(b))
	}
	for i := range a {
		if a[i].Name != b[i].Name || a[i].DType != b[i].DType || !sameShape(a[i].Shape, b[i].Shape) {
			return fmt.Errorf("%s %d differs: %s %s %v vs %s %s %v", kind, i, a[i].Name, a[i].DType, a[i].Shape, b[i].Name, b[i].DType, b[i].Shape)
		}
	}
	return nil
}
