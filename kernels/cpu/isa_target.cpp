// The Highway target the tier in force dispatches to (isa.hpp's highway_target()): one
// function compiled for every target, which names its own.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/isa_target.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "kernels/cpu/isa.hpp"

HWY_BEFORE_NAMESPACE();
namespace paralab::kernels::cpu::HWY_NAMESPACE {
const char* TargetName() {
  return hwy::TargetName(HWY_TARGET);
}
}  // namespace paralab::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace paralab::kernels::cpu {
HWY_EXPORT(TargetName);
const char* highway_target() {
  active_isa();  // PARALAB_ISA applies before the first dispatch
  return HWY_DYNAMIC_DISPATCH(TargetName)();
}
}  // namespace paralab::kernels::cpu
#endif
