/* TensorFlow parser plugin: maps the TF op types of ops/cc one to one onto the custom TBE ops.
 * Attribute names are identical on both sides, so automatic mapping carries them over. */
#include "register/register.h"

namespace domi {

/* The TF op type `op_type` onto the custom TBE op of the same name. REGISTER_CUSTOM_OP names its
 * registrar by __COUNTER__, so the four expansions below do not collide. */
#define EDVR_REGISTER_TF_OP(op_type)              \
  REGISTER_CUSTOM_OP(op_type)                     \
      .FrameworkType(TENSORFLOW)                  \
      .OriginOpType(op_type)                      \
      .ParseParamsByOperatorFn(AutoMappingByOpFn) \
      .ImplyType(ImplyType::TVM)

EDVR_REGISTER_TF_OP("EdvrDeformableOffsets");
EDVR_REGISTER_TF_OP("EdvrDeformableOffsetsGrad");
EDVR_REGISTER_TF_OP("EdvrBilinearSample");
EDVR_REGISTER_TF_OP("EdvrBilinearSampleGrad");

}  // namespace domi
