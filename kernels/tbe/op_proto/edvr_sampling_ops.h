/* Graph-engine prototypes of the EDVR sampling ops (same names, inputs, outputs and attributes
 * as the TensorFlow ops in ops/cc and the op info in tbe/op_info_cfg). */
#ifndef EDVR_KERNELS_TBE_OP_PROTO_EDVR_SAMPLING_OPS_H_
#define EDVR_KERNELS_TBE_OP_PROTO_EDVR_SAMPLING_OPS_H_

#include "graph/operator_reg.h"

namespace ge {

/* The attributes of EdvrDeformableOffsets and its gradient, in the order and with the defaults of
 * the TF ops (ops/cc). GE's REG_OP chain is preprocessor text, so a macro of whole `.ATTR(...)`
 * calls expands like the written-out chain. The ports stay written out: recent GE headers
 * stringify INPUT's type argument (InputRegister(#x, #t)), so a macro standing for
 * TensorType({...}) there would register its own name instead of the types. */
#define EDVR_DEFORMABLE_OFFSETS_ATTRS    \
  REQUIRED_ATTR(ksize, ListInt)          \
      .ATTR(strides, ListInt, {1, 1})    \
      .ATTR(pads, ListInt, {0, 0, 0, 0}) \
      .ATTR(dilations, ListInt, {1, 1})  \
      .ATTR(deformable_groups, Int, 1)   \
      .ATTR(modulated, Bool, true)

/* x [N, H, W, C], offsets [N, Ho, Wo, 3*G*K] (dx, dy, mask blocks) -> y [N, Ho*kh, Wo*kw, C]. */
REG_OP(EdvrDeformableOffsets)
    .INPUT(x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(offsets, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(y, TensorType({DT_FLOAT16, DT_FLOAT}))
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .OP_END_FACTORY_REG(EdvrDeformableOffsets)

    /* Gradients of EdvrDeformableOffsets: grad_x like x, grad_offsets like offsets. */
    REG_OP(EdvrDeformableOffsetsGrad)
    .INPUT(grad, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(offsets, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(grad_x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(grad_offsets, TensorType({DT_FLOAT16, DT_FLOAT}))
    .EDVR_DEFORMABLE_OFFSETS_ATTRS
    .OP_END_FACTORY_REG(EdvrDeformableOffsetsGrad)

    /* x [N, H, W, C], coords [N, ..., 2] as (x, y) -> y [N, ..., C]. */
    REG_OP(EdvrBilinearSample)
    .INPUT(x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(coords, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(y, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OP_END_FACTORY_REG(EdvrBilinearSample)

    /* Gradients of EdvrBilinearSample: grad_x like x, grad_coords like coords. */
    REG_OP(EdvrBilinearSampleGrad)
    .INPUT(grad, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .INPUT(coords, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(grad_x, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OUTPUT(grad_coords, TensorType({DT_FLOAT16, DT_FLOAT}))
    .OP_END_FACTORY_REG(EdvrBilinearSampleGrad)

}  // namespace ge

#endif  // EDVR_KERNELS_TBE_OP_PROTO_EDVR_SAMPLING_OPS_H_
