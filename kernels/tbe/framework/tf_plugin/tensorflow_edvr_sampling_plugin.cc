/* TensorFlow parser plugin: maps the TF op types of ops/cc one to one onto the custom TBE ops.
 * Attribute names are identical on both sides, so automatic mapping carries them over. */
#include "register/register.h"

namespace domi {

REGISTER_CUSTOM_OP("EdvrDeformableOffsets")
    .FrameworkType(TENSORFLOW)
    .OriginOpType("EdvrDeformableOffsets")
    .ParseParamsByOperatorFn(AutoMappingByOpFn)
    .ImplyType(ImplyType::TVM);

REGISTER_CUSTOM_OP("EdvrDeformableOffsetsGrad")
    .FrameworkType(TENSORFLOW)
    .OriginOpType("EdvrDeformableOffsetsGrad")
    .ParseParamsByOperatorFn(AutoMappingByOpFn)
    .ImplyType(ImplyType::TVM);

REGISTER_CUSTOM_OP("EdvrBilinearSample")
    .FrameworkType(TENSORFLOW)
    .OriginOpType("EdvrBilinearSample")
    .ParseParamsByOperatorFn(AutoMappingByOpFn)
    .ImplyType(ImplyType::TVM);

REGISTER_CUSTOM_OP("EdvrBilinearSampleGrad")
    .FrameworkType(TENSORFLOW)
    .OriginOpType("EdvrBilinearSampleGrad")
    .ParseParamsByOperatorFn(AutoMappingByOpFn)
    .ImplyType(ImplyType::TVM);

}  // namespace domi
