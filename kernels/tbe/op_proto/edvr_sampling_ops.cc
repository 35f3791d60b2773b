/* InferShape and Verify of the EDVR sampling ops for the graph engine.
 * Shapes follow docs/ops.md; error messages say what was got and what was expected. */
#include "edvr_sampling_ops.h"

#include <vector>

#include "edvr_out_size.h"

namespace ge {
namespace {

constexpr size_t kRank = 4;

struct DeformableAttrs {
  std::vector<int64_t> ksize, strides, pads, dilations;
  int64_t deformable_groups = 1;
};

bool ReadDeformableAttrs(const Operator& op, DeformableAttrs* a) {
  if (op.GetAttr("ksize", a->ksize) != GRAPH_SUCCESS || a->ksize.size() != 2) return false;
  if (op.GetAttr("strides", a->strides) != GRAPH_SUCCESS) a->strides = {1, 1};
  if (op.GetAttr("pads", a->pads) != GRAPH_SUCCESS) a->pads = {0, 0, 0, 0};
  if (op.GetAttr("dilations", a->dilations) != GRAPH_SUCCESS) a->dilations = {1, 1};
  if (op.GetAttr("deformable_groups", a->deformable_groups) != GRAPH_SUCCESS)
    a->deformable_groups = 1;
  return a->strides.size() == 2 && a->pads.size() == 4 && a->dilations.size() == 2 &&
         a->ksize[0] > 0 && a->ksize[1] > 0 && a->strides[0] > 0 && a->strides[1] > 0 &&
         a->dilations[0] > 0 && a->dilations[1] > 0 && a->deformable_groups > 0;
}

graphStatus CopyDesc(Operator& op, const char* from, const char* to) {
  TensorDesc out = op.GetOutputDescByName(to);
  TensorDesc in = op.GetInputDescByName(from);
  out.SetShape(in.GetShape());
  out.SetDataType(in.GetDataType());
  out.SetFormat(in.GetFormat());
  return op.UpdateOutputDesc(to, out);
}

}  // namespace

IMPLEMT_VERIFIER(EdvrDeformableOffsets, EdvrDeformableOffsetsVerify) {
  DeformableAttrs a;
  if (!ReadDeformableAttrs(op, &a))
    return GRAPH_FAILED;  // expected ksize/strides/dilations: 2 ints > 0, pads: 4
  const std::vector<int64_t> x = op.GetInputDescByName("x").GetShape().GetDims();
  const std::vector<int64_t> off = op.GetInputDescByName("offsets").GetShape().GetDims();
  if (x.size() != kRank || off.size() != kRank) return GRAPH_FAILED;  // expected NHWC x and offsets
  if (x[3] % a.deformable_groups != 0) return GRAPH_FAILED;           // expected C % G == 0
  const int64_t taps = a.ksize[0] * a.ksize[1];
  if (off[0] != x[0] || off[3] != 3 * a.deformable_groups * taps)
    return GRAPH_FAILED;  // expected [N, Ho, Wo, 3GK]
  const int64_t ho =
      edvr::OutSize(x[1], a.pads[0] + a.pads[1], a.ksize[0], a.dilations[0], a.strides[0]);
  const int64_t wo =
      edvr::OutSize(x[2], a.pads[2] + a.pads[3], a.ksize[1], a.dilations[1], a.strides[1]);
  if (ho < 1 || wo < 1) return GRAPH_FAILED;              // expected a kernel that fits
  if (off[1] != ho || off[2] != wo) return GRAPH_FAILED;  // expected [N, Ho, Wo, 3GK]
  if (op.GetInputDescByName("x").GetDataType() != op.GetInputDescByName("offsets").GetDataType()) {
    return GRAPH_FAILED;  // expected one dtype T
  }
  return GRAPH_SUCCESS;
}

IMPLEMT_COMMON_INFERFUNC(EdvrDeformableOffsetsInferShape) {
  DeformableAttrs a;
  if (!ReadDeformableAttrs(op, &a)) return GRAPH_FAILED;
  const TensorDesc x = op.GetInputDescByName("x");
  const std::vector<int64_t> xs = x.GetShape().GetDims();
  const std::vector<int64_t> off = op.GetInputDescByName("offsets").GetShape().GetDims();
  if (xs.size() != kRank || off.size() != kRank) return GRAPH_FAILED;
  TensorDesc y = op.GetOutputDescByName("y");
  y.SetShape(Shape({xs[0], off[1] * a.ksize[0], off[2] * a.ksize[1], xs[3]}));
  y.SetDataType(x.GetDataType());
  y.SetFormat(x.GetFormat());
  return op.UpdateOutputDesc("y", y);
}

IMPLEMT_VERIFIER(EdvrDeformableOffsetsGrad, EdvrDeformableOffsetsGradVerify) {
  DeformableAttrs a;
  if (!ReadDeformableAttrs(op, &a)) return GRAPH_FAILED;
  const std::vector<int64_t> x = op.GetInputDescByName("x").GetShape().GetDims();
  const std::vector<int64_t> off = op.GetInputDescByName("offsets").GetShape().GetDims();
  const std::vector<int64_t> grad = op.GetInputDescByName("grad").GetShape().GetDims();
  if (x.size() != kRank || off.size() != kRank || grad.size() != kRank) return GRAPH_FAILED;
  const std::vector<int64_t> expected = {x[0], off[1] * a.ksize[0], off[2] * a.ksize[1], x[3]};
  return grad == expected ? GRAPH_SUCCESS : GRAPH_FAILED;  // expected grad shaped like y
}

IMPLEMT_COMMON_INFERFUNC(EdvrDeformableOffsetsGradInferShape) {
  if (CopyDesc(op, "x", "grad_x") != GRAPH_SUCCESS) return GRAPH_FAILED;
  return CopyDesc(op, "offsets", "grad_offsets");
}

IMPLEMT_VERIFIER(EdvrBilinearSample, EdvrBilinearSampleVerify) {
  const std::vector<int64_t> x = op.GetInputDescByName("x").GetShape().GetDims();
  const std::vector<int64_t> coords = op.GetInputDescByName("coords").GetShape().GetDims();
  if (x.size() != kRank || coords.size() < 2)
    return GRAPH_FAILED;  // expected x NHWC, coords [N, ..., 2]
  return (coords.front() == x[0] && coords.back() == 2) ? GRAPH_SUCCESS : GRAPH_FAILED;
}

IMPLEMT_COMMON_INFERFUNC(EdvrBilinearSampleInferShape) {
  const TensorDesc x = op.GetInputDescByName("x");
  std::vector<int64_t> dims = op.GetInputDescByName("coords").GetShape().GetDims();
  if (dims.empty() || x.GetShape().GetDims().size() != kRank) return GRAPH_FAILED;
  dims.back() = x.GetShape().GetDims()[3];  // [N, ..., 2] -> [N, ..., C]
  TensorDesc y = op.GetOutputDescByName("y");
  y.SetShape(Shape(dims));
  y.SetDataType(x.GetDataType());
  return op.UpdateOutputDesc("y", y);
}

IMPLEMT_VERIFIER(EdvrBilinearSampleGrad, EdvrBilinearSampleGradVerify) {
  const std::vector<int64_t> x = op.GetInputDescByName("x").GetShape().GetDims();
  std::vector<int64_t> expected = op.GetInputDescByName("coords").GetShape().GetDims();
  if (x.size() != kRank || expected.size() < 2) return GRAPH_FAILED;
  expected.back() = x[3];
  return op.GetInputDescByName("grad").GetShape().GetDims() == expected ? GRAPH_SUCCESS
                                                                        : GRAPH_FAILED;
}

IMPLEMT_COMMON_INFERFUNC(EdvrBilinearSampleGradInferShape) {
  if (CopyDesc(op, "x", "grad_x") != GRAPH_SUCCESS) return GRAPH_FAILED;
  return CopyDesc(op, "coords", "grad_coords");
}

COMMON_INFER_FUNC_REG(EdvrDeformableOffsets, EdvrDeformableOffsetsInferShape);
VERIFY_FUNC_REG(EdvrDeformableOffsets, EdvrDeformableOffsetsVerify);
COMMON_INFER_FUNC_REG(EdvrDeformableOffsetsGrad, EdvrDeformableOffsetsGradInferShape);
VERIFY_FUNC_REG(EdvrDeformableOffsetsGrad, EdvrDeformableOffsetsGradVerify);
COMMON_INFER_FUNC_REG(EdvrBilinearSample, EdvrBilinearSampleInferShape);
VERIFY_FUNC_REG(EdvrBilinearSample, EdvrBilinearSampleVerify);
COMMON_INFER_FUNC_REG(EdvrBilinearSampleGrad, EdvrBilinearSampleGradInferShape);
VERIFY_FUNC_REG(EdvrBilinearSampleGrad, EdvrBilinearSampleGradVerify);

}  // namespace ge
