package inference

import (
	"fmt"
)

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
