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
	return pilotNet(pilotSpec{name: "pilotnet", role: RolePrimary, version: Version, seed: PrimarySeed,
		doc: "PilotNet-shaped CNN with seeded He-uniform float32 weights (a demo model, not trained)."}, batch)
}

// Shadow returns the shadow model: the primary with every weight and bias
// rounded to the nearest float16 (stored as float32). It tracks the primary
// closely but not bit-exactly.
func Shadow() ([]byte, error) { return shadow(false) }

func shadow(batch bool) ([]byte, error) {
	return pilotNet(pilotSpec{name: "pilotnet-fp16", role: RoleShadow, version: Version, seed: PrimarySeed,
		adjust: RoundFloat16,
		doc:    "The primary PilotNet with every weight rounded through IEEE float16 (a demo model, not trained)."}, batch)
}

// pilotSpec is what tells the PilotNet-shaped models apart: the primary,
// the shadow and the primary's rollout versions.
type pilotSpec struct {
	name, role, version, doc string
	// seed is recorded under MetaSeed. The weights are always drawn from
	// PrimarySeed; a model that changes them says how in adjust.
	seed uint64
	// adjust, if not nil, maps each weight and bias drawn from PrimarySeed,
	// in drawing order, to the value stored.
	adjust func(float32) float32
	// logits, if not nil, adds nodes between the last dense layer and the
	// controls head: it takes the [N,3] pre-activations and returns the
	// name of the tensor the head reads instead.
	logits func(b *onnxgraph.Builder, logits string) string
}

func pilotNet(spec pilotSpec, batch bool) ([]byte, error) {
	b := newModel(spec.name, spec.role, spec.version, spec.seed, batch, spec.doc)
	l := &layers{b: b, w: newWeights(PrimarySeed, spec.adjust)}

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
	if spec.logits != nil {
		x = spec.logits(b, x)
	}
	controlsHead(b, x, batch)
	return b.Marshal()
}

// newModel starts a demo model: the input, producer, doc string and the
// metadata every demo model carries, version going under MetaVersion. A batch model takes any number of
// frames on the input's first axis (BatchShape).
func newModel(name, role, version string, seed uint64, batch bool, doc string) *onnxgraph.Builder {
	b := onnxgraph.New(name)
	b.SetProducer("vigil-models", Version)
	shape := InputShape
	if batch {
		doc += " Takes a batch of frames on the first axis."
		shape = batchShape(InputShape)
	}
	b.SetDocString(doc)
	b.SetMetadata(MetaName, name)
	b.SetMetadata(MetaVersion, version)
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
