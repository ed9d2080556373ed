// options.hpp: parsing of sizes with suffixes and comma-separated sweeps, and
// CLI11 helpers that apply them, shared by every app.
//
// Sizes: a non-negative integer with an optional binary suffix k, M, G, T
// (case-insensitive, x1024 each), optionally followed by 'B' or "iB":
// "8k" = 8192, "1M" = 1048576, "64KiB" = 65536. Sweeps are comma lists of
// sizes: "1k,4k,16k".
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace paralab {

// Throws UsageError naming `what` on malformed input or overflow.
uint64_t parse_size(std::string_view text, std::string_view what = "size");
std::vector<uint64_t> parse_sweep(std::string_view text, std::string_view what = "sweep");
// Inverse of parse_size for display: 8192 -> "8k", 1000 -> "1000".
std::string format_size(uint64_t value);
// Bytes for display with a decimal point where needed: 1536 -> "1.5 KiB".
std::string format_bytes(uint64_t bytes);

// CLI11 transform that accepts size suffixes; the option's stored text
// becomes the plain integer, so the recorded configuration is unambiguous.
CLI::Validator size_validator();

// Checks for numeric options with a plain message ("must be a positive number,
// not 'abc'"): CLI11's PositiveNumber and NonNegativeNumber are ranges up to
// DBL_MAX and print its 309 digits when the value is not a number.
CLI::Validator positive_number();
CLI::Validator non_negative_number();

// add_option with size parsing; for vectors, a comma list (a sweep).
template <class T>
CLI::Option* add_size_option(CLI::App& app, const std::string& name, T& value,
                             const std::string& description) {
  auto* option = app.add_option(name, value, description)->transform(size_validator());
  if constexpr (requires { value.push_back(0); }) option->delimiter(',');
  return option->capture_default_str();
}

// Options that do nothing in the current mode must not be accepted silently:
// throws UsageError naming the first of `names` (long names, "--tp") given on
// the command line, followed by `reason` ("is for measure mode: ...").
void reject_given(const CLI::App& cli, const std::vector<std::string>& names,
                  const std::string& reason);

}  // namespace paralab
