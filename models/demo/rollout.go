package demo

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/vigil-av/vigil/models/onnxgraph"
)

// The primary's rollout versions: later versions of the "pilotnet" model on
// the primary's contract, for the over-the-air demos and tests — a good
// update, one a trial must refuse, and one the health gate must roll back.
// Each is also the stem of its file: FileName(PrimaryV2) is
// "primary-v2.onnx".
const (
	// PrimaryV2 is a good update: the primary's weights each moved by at
	// most V2Perturbation of themselves. Its outputs stay within
	// RolloutTolerance of the primary's.
	PrimaryV2 = "primary-v2"
	// PrimaryBad diverges: the primary with its output pre-activations
	// shifted by BadLogitShift. Its outputs are finite and inside
	// OutputRanges but differ from the primary's by far more than
	// RolloutTolerance, so only a comparison catches it.
	PrimaryBad = "primary-bad"
	// PrimarySlow is correct but slow: the primary plus a chain of
	// SlowLayers MatMul+Tanh nodes over the frame whose mean moves each
	// pre-activation by less than SlowBranchScale. Its outputs stay within
	// RolloutTolerance of the primary's; one inference on a CPU thread takes
	// many times the primary's and misses the 33 ms demo deadline.
	PrimarySlow = "primary-slow"
)

// Rollouts lists the rollout versions in the order WriteRollouts writes
// them, which is also the order of their versions.
var Rollouts = []string{PrimaryV2, PrimaryBad, PrimarySlow}

// The vigil.version of each rollout version. The primary itself is version
// 1 (its vigil.version is Version, "1.x.y"); a bundle carrying one of these
// models would carry the leading number as its version.
const (
	PrimaryV2Version   = "2.0.0"
	PrimaryBadVersion  = "3.0.0"
	PrimarySlowVersion = "4.0.0"
)

// RolloutTolerance is the largest |candidate - primary| allowed on any
// element of OutputName for a frame: PrimaryV2 and PrimarySlow stay within
// it of the primary (and of each other) on every frame the tests try;
// PrimaryBad is more than twice it away from both on every one. A trial comparing a candidate with
// the live primary can use it as its default tolerance.
const RolloutTolerance = 0.05

// Seeds of what the rollout versions draw beyond the primary's weights
// (which all of them draw from PrimarySeed), recorded under MetaSeed.
// PrimaryBad draws nothing more and records PrimarySeed.
const (
	// PrimaryV2Seed draws PrimaryV2's per-weight factors.
	PrimaryV2Seed uint64 = 20240603
	// PrimarySlowSeed draws the weight of PrimarySlow's chain.
	PrimarySlowSeed uint64 = 20240605
)

// V2Perturbation is the largest relative change PrimaryV2 makes to any
// weight or bias of the primary.
const V2Perturbation = 0.005

// BadLogitShift is added to PrimaryBad's [steering, acceleration, braking]
// pre-activations: it steers right, holds back the throttle and brakes.
var BadLogitShift = [3]float32{2, -2, 2}

// SlowLayers is the length of PrimarySlow's chain; SlowBranchScale bounds
// how much the chain moves each pre-activation (the chain's values lie in
// (-1,1) and their mean is scaled by it).
const (
	SlowLayers      = 1000
	SlowBranchScale = 1e-4
)

// slowWidth is the last axis of the frame, which each MatMul of
// PrimarySlow's chain multiplies by a [slowWidth, slowWidth] weight.
const slowWidth = 200

// ErrUnknownRollout is returned by GenerateRollout for a name not in
// Rollouts.
var ErrUnknownRollout = errors.New("unknown rollout model")

// GenerateRollout returns the serialised model named in Rollouts. All of
// them have the primary's contract and vigil.name, vigil.role "primary",
// and their own vigil.version and vigil.seed.
func GenerateRollout(name string) ([]byte, error) {
	switch name {
	case PrimaryV2:
		return pilotNet(pilotSpec{name: "pilotnet", role: RolePrimary, version: PrimaryV2Version, seed: PrimaryV2Seed,
			adjust: perturb(PrimaryV2Seed, V2Perturbation),
			doc: fmt.Sprintf("PilotNet version 2: the primary with each weight scaled by a seeded factor within %g%% of 1 (a demo model, not trained).",
				100*V2Perturbation)}, false)
	case PrimaryBad:
		return pilotNet(pilotSpec{name: "pilotnet", role: RolePrimary, version: PrimaryBadVersion, seed: PrimarySeed,
			logits: shiftLogits,
			doc:    "PilotNet version 3, a bad update: the primary with its output pre-activations shifted, so that it steers right and brakes (a demo model, not trained)."}, false)
	case PrimarySlow:
		return pilotNet(pilotSpec{name: "pilotnet", role: RolePrimary, version: PrimarySlowVersion, seed: PrimarySlowSeed,
			logits: slowBranch,
			doc:    "PilotNet version 4, a slow update: the primary plus a long chain of matrix products that barely moves its outputs (a demo model, not trained)."}, false)
	}
	return nil, fmt.Errorf("%w %q (want one of %v)", ErrUnknownRollout, name, Rollouts)
}

// shiftLogits adds BadLogitShift to the pre-activations.
func shiftLogits(b *onnxgraph.Builder, logits string) string {
	b.AddInitializer("logits.shift", dims(1, 3), BadLogitShift[:])
	b.AddNode("Add", []string{logits, "logits.shift"}, []string{"logits.shifted"})
	return "logits.shifted"
}

// slowBranch adds the cost of PrimarySlow: h = frame, then SlowLayers times
// h = Tanh(MatMul(h, W)) with one shared W (each a [198,200]×[200,200]
// product per frame), then the mean of h over each channel's rows and
// columns, an [N,3] tensor in (-1,1), times SlowBranchScale, added to the
// pre-activations. The chain starts from the frame, so ONNX Runtime can
// neither fold it into a constant nor drop it.
func slowBranch(b *onnxgraph.Builder, logits string) string {
	// Uniform on ±√(3/width) has variance 1/width: each product keeps the
	// scale of its input and Tanh neither saturates nor vanishes.
	w := newWeights(PrimarySlowSeed, nil)
	b.AddInitializer("slow.weight", dims(slowWidth, slowWidth), w.uniform(slowWidth*slowWidth, math.Sqrt(3.0/slowWidth)))
	h := InputName
	for i := range SlowLayers {
		name := "slow" + strconv.Itoa(i+1)
		b.AddNode("MatMul", []string{h, "slow.weight"}, []string{name + ".matmul"})
		b.AddNode("Tanh", []string{name + ".matmul"}, []string{name})
		h = name
	}
	b.AddNode("ReduceMean", []string{h}, []string{"slow.mean"},
		onnxgraph.Ints("axes", 2, 3), onnxgraph.Int("keepdims", 0))
	b.AddInitializer("slow.scale", dims(1), []float32{SlowBranchScale})
	b.AddNode("Mul", []string{"slow.mean", "slow.scale"}, []string{"slow.delta"})
	b.AddNode("Add", []string{logits, "slow.delta"}, []string{"logits.slow"})
	return "logits.slow"
}

// WriteRollouts generates every model in Rollouts and writes each to
// dir/FileName(name), creating dir if needed, atomically as WriteAll does.
// It returns the paths in Rollouts order.
func WriteRollouts(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create model directory: %w", err)
	}
	paths := make([]string, 0, len(Rollouts))
	for _, name := range Rollouts {
		data, err := GenerateRollout(name)
		if err != nil {
			return paths, fmt.Errorf("generate %s model: %w", name, err)
		}
		path := filepath.Join(dir, FileName(name))
		if err := writeFileAtomic(path, data); err != nil {
			return paths, err
		}
		paths = append(paths, path)
	}
	return paths, nil
}
