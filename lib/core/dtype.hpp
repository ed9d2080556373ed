// dtype.hpp: the element types the communication layer and kernels move.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace paralab {

enum class DType { f32, f64, bf16, i32, i64, u8 };

size_t dtype_size(DType type);
std::string_view dtype_name(DType type);  // "f32", "bf16", ...
// Accepts the names above and the aliases float, double, bfloat16, int32,
// int64, uint8. Throws UsageError otherwise.
DType parse_dtype(std::string_view name);

}  // namespace paralab
