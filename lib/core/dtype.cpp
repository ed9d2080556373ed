#include "core/dtype.hpp"

#include "core/errors.hpp"

namespace paralab {

namespace {
struct DTypeInfo {
  DType type;
  std::string_view name;
  std::string_view alias;
  size_t size;
};
constexpr DTypeInfo kTypes[] = {
    {DType::f32, "f32", "float", 4},      {DType::f64, "f64", "double", 8},
    {DType::bf16, "bf16", "bfloat16", 2}, {DType::i32, "i32", "int32", 4},
    {DType::i64, "i64", "int64", 8},      {DType::u8, "u8", "uint8", 1},
};
const DTypeInfo& info(DType type) {
  for (const auto& t : kTypes)
    if (t.type == type) return t;
  throw RuntimeError("unknown DType");
}
}  // namespace

size_t dtype_size(DType type) {
  return info(type).size;
}
std::string_view dtype_name(DType type) {
  return info(type).name;
}

DType parse_dtype(std::string_view name) {
  for (const auto& t : kTypes)
    if (name == t.name || name == t.alias) return t.type;
  throw UsageError("unknown data type '" + std::string(name) +
                   "' (use f32, f64, bf16, i32, i64 or u8)");
}

}  // namespace paralab
