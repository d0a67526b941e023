// Package demo generates Vigil's three demo driving models, and three later
// versions of the primary for over-the-air rollouts. They are not
// trained: their weights are drawn from fixed seeds, so they stand in for real
// models with the right shapes, costs and failure modes while anyone can
// regenerate them byte for byte (the tests pin their SHA-256).
//
// All three share one contract, so the inference layer can fail over between
// them without translating anything:
//
//	input  InputName  "frame"    float32 [1,3,66,200]  camera frame, values in [0,1]
//	output OutputName "controls" float32 [1,3]         steering in [-1,1] (Tanh),
//	                                                   acceleration in [0,1] (Sigmoid),
//	                                                   braking in [0,1] (Sigmoid)
//
// The models, by role:
//
//   - primary ("pilotnet"): a PilotNet-shaped CNN — Conv 24@5×5/2, 36@5×5/2,
//     48@5×5/2, 64@3×3, 64@3×3, each with ReLU; Flatten; Gemm 100, 50, 10 with
//     ReLU; Gemm 3 — with He-uniform weights from PrimarySeed.
//   - shadow ("pilotnet-fp16"): the primary with every weight rounded through
//     IEEE float16 (RoundFloat16). On random frames its outputs differ from the
//     primary's by under 1e-3 (the tests allow 5e-3) but not bit-exactly, as
//     a reduced-precision build would.
//   - degraded ("pooled-mlp"): AveragePool 11×20, Flatten, Gemm 32 with ReLU,
//     Gemm 3, from DegradedSeed; cheap enough for a loaded CPU.
//
// For over-the-air rollouts, GenerateRollout makes three later versions of
// the primary, each with the primary's contract, vigil.name "pilotnet" and
// vigil.role "primary", and its own vigil.version and vigil.seed:
//
//   - PrimaryV2 ("primary-v2", version 2.0.0), a good update: every weight
//     and bias of the primary scaled by its own factor in [0.995, 1.005)
//     (V2Perturbation) drawn from PrimaryV2Seed. On random and structured
//     frames its outputs differ from the primary's by up to about 0.02, under
//     RolloutTolerance (0.05, the largest |candidate - primary| on any
//     element of a frame's controls).
//   - PrimaryBad ("primary-bad", version 3.0.0), an update a trial must
//     refuse: the primary with BadLogitShift (+2, -2, +2) added to its
//     pre-activations, so it steers right, eases off and brakes. Its outputs
//     stay finite and inside their ranges but differ from the primary's by
//     more than twice RolloutTolerance on every frame the tests try.
//   - PrimarySlow ("primary-slow", version 4.0.0), an update the health
//     gate must roll back: the primary plus a chain of SlowLayers (1000)
//     MatMul+Tanh nodes over the frame, whose per-channel mean times
//     SlowBranchScale (1e-4) is added to the pre-activations. Its outputs stay
//     within 1e-4 of the primary's, but on one CPU thread a run takes over a
//     hundred times as long (about 0.5 ms against 85-150 ms on the development
//     VM), far past the demos' 33 ms deadline.
//
// Each ends in the same head: Split the three pre-activations, Tanh the
// first, Sigmoid the other two, Concat.
//
// Each model's metadata_props carry MetaName, MetaVersion, MetaRole, MetaSeed,
// MetaOutputRangePrefix+"controls" = "[[-1,1],[0,1],[0,1]]", the JSON list
// of per-element [min,max] bounds that the inference layer checks outputs
// against, and MetaInputRangePrefix+"frame" = "[0,1]", the range outside
// which the inference layer refuses a frame before any model sees it.
//
// Primary, Shadow and Degraded return the serialised models; WriteAll writes
// all three to a directory atomically, and WriteRollouts the three rollout
// versions beside them (cmd/vigil-models does both for `make models`). GenerateBatched returns their multi-camera variants: the
// same networks and weights with a dynamic first axis ("batch") on input and
// output, taking [N,3,66,200] and answering [N,3].
package demo
