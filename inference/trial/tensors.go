package trial

import (
	"fmt"
	"slices"

	"github.com/vigil-av/vigil/inference"
)

// buffers allocates tensors for a contract's inputs or outputs, at their
// full size (the largest batch, for a model that takes batches).
func buffers(infos []inference.TensorInfo) []inference.Tensor {
	ts := make([]inference.Tensor, len(infos))
	for i, x := range infos {
		ts[i] = inference.Tensor{Name: x.Name, DType: x.DType, Shape: slices.Clone(x.Shape)}
		if x.DType == inference.Float32 || x.DType == inference.DTypeUnset {
			ts[i].Data = make([]float32, x.Size)
		} else {
			ts[i].Raw = make([]byte, x.Size*x.DType.Size())
		}
	}
	return ts
}

// copyTensors copies src into dst, tensor by tensor, reusing dst's memory
// (sized by buffers for the largest request, so nothing is allocated).
func copyTensors(dst, src []inference.Tensor) {
	for i := range min(len(dst), len(src)) {
		d, s := &dst[i], &src[i]
		d.Name, d.DType = s.Name, s.DType
		d.Shape = append(d.Shape[:0], s.Shape...)
		d.Data = append(d.Data[:0], s.Data...)
		d.Raw = append(d.Raw[:0], s.Raw...)
	}
}

// sameContract checks that the candidate takes and gives what the live
// model does: the same inputs and outputs, in order, with their names,
// dtypes and shapes, and the same batches.
func sameContract(cand, live inference.ModelInfo) error {
	if cand.MaxBatch != live.MaxBatch {
		return fmt.Errorf("max_batch %d, the live model's %d", cand.MaxBatch, live.MaxBatch)
	}
	if err := sameTensors("input", cand.Inputs, live.Inputs); err != nil {
		return err
	}
	return sameTensors("output", cand.Outputs, live.Outputs)
}

func sameTensors(kind string, cand, live []inference.TensorInfo) error {
	if len(cand) != len(live) {
		return fmt.Errorf("%d %ss, the live model has %d", len(cand), kind, len(live))
	}
	for i, c := range cand {
		l := live[i]
		if c.Name != l.Name || c.DType != l.DType || !slices.Equal(c.Shape, l.Shape) {
			return fmt.Errorf("%s %d is %s %s %v, the live model's is %s %s %v", kind, i, c.Name, c.DType, c.Shape, l.Name, l.DType, l.Shape)
		}
	}
	return nil
}
