package demo

import (
	"strconv"

	"github.com/vigil-av/vigil/models/onnxgraph"
)

// Seeds of the weight generators, recorded under MetaSeed. The shadow uses
// the primary's seed: it is the same network with its weights rounded.
const (
	PrimarySeed  uint64 = 20240601
	DegradedSeed uint64 = 20240602
)

// Primary returns the primary model: a PilotNet-shaped CNN (five
// convolutions with ReLU, Flatten, dense layers of 100, 50 and 10 with ReLU,
// then a dense output layer of 3 and the controls head) with He-uniform
// weights drawn from PrimarySeed.
func Primary() ([]byte, error) { return primary(false) }

func primary(batch bool) ([]byte, error) {
	return pilotNet("pilotnet", RolePrimary, nil, batch,
		"PilotNet-shaped CNN with seeded He-uniform float32 weights (a demo model, not trained).")
}

// Shadow returns the shadow model: the primary with every weight and bias
// rounded to the nearest float16 (stored as float32). It tracks the primary
// closely but not bit-exactly.
func Shadow() ([]byte, error) { return shadow(false) }

func shadow(batch bool) ([]byte, error) {
	return pilotNet("pilotnet-fp16", RoleShadow, RoundFloat16, batch,
		"The primary PilotNet with every weight rounded through IEEE float16 (a demo model, not trained).")
}

func pilotNet(name, role string, round func(float32) float32, batch bool, doc string) ([]byte, error) {
	b := newModel(name, role, PrimarySeed, batch, doc)
	l := &layers{b: b, w: newWeights(PrimarySeed, round)}

	// 3×66×200 → 24×31×98 → 36×14×47 → 48×5×22 → 64×3×20 → 64×1×18.
	x := l.conv(InputName, 3, 24, 5, 2)
	x = l.conv(x, 24, 36, 5, 2)
	x = l.conv(x, 36, 48, 5, 2)
	x = l.conv(x, 48, 64, 3, 1)
	x = l.conv(x, 64, 64, 3, 1)
	b.AddNode("Flatten", []string{x}, []string{"flatten"}, onnxgraph.Int("axis", 1))
	x = l.dense("flatten", 64*1*18, 100, true)
	x = l.dense(x, 100, 50, true)
	x = l.dense(x, 50, 10, true)
	x = l.dense(x, 10, 3, false)
	controlsHead(b, x, batch)
	return b.Marshal()
}

// newModel starts a demo model: the input, producer, doc string and the
// metadata every demo model carries. A batch model takes any number of
// frames on the input's first axis (BatchShape).
func newModel(name, role string, seed uint64, batch bool, doc string) *onnxgraph.Builder {
	b := onnxgraph.New(name)
	b.SetProducer("vigil-models", Version)
	shape := InputShape
	if batch {
		doc += " Takes a batch of frames on the first axis."
		shape = batchShape(InputShape)
	}
	b.SetDocString(doc)
	b.SetMetadata(MetaName, name)
	b.SetMetadata(MetaVersion, Version)
	b.SetMetadata(MetaRole, role)
	b.SetMetadata(MetaOutputRangePrefix+OutputName, outputRangeJSON)
	b.SetMetadata(MetaInputRangePrefix+InputName, inputRangeJSON)
	b.SetMetadata(MetaSeed, strconv.FormatUint(seed, 10))
	b.AddInput(InputName, shape...)
	return b
}

// batchShape is shape with its first axis dynamic.
func batchShape(shape []int64) []int64 {
	return append([]int64{onnxgraph.Batch}, shape[1:]...)
}
