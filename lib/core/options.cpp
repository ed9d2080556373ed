#include "core/options.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/errors.hpp"

namespace paralab {

namespace {

int suffix_power(std::string_view suffix) {
  if (suffix.empty()) return 0;
  std::string s(suffix);
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::string_view letters = "kmgt";
  const size_t letter = letters.find(s[0]);
  if (letter == std::string_view::npos) return -1;
  std::string_view rest = std::string_view(s).substr(1);
  if (rest.empty() || rest == "b" || rest == "ib") return static_cast<int>(letter) + 1;
  return -1;
}

}  // namespace

uint64_t parse_size(std::string_view text, std::string_view what) {
  auto fail = [&](const std::string& why) -> uint64_t {
    throw UsageError(std::string(what) + " '" + std::string(text) + "' " + why);
  };
  if (text.empty()) return fail("is empty");
  if (text[0] == '-') return fail("is negative");
  uint64_t number = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc::result_out_of_range) return fail("is too large");
  if (ec != std::errc() || ptr == text.data())
    return fail("is not a size (examples: 4096, 8k, 1M, 2G)");
  std::string_view suffix(ptr, static_cast<size_t>(text.data() + text.size() - ptr));
  if (suffix == "b" || suffix == "B") suffix = {};
  const int power = suffix_power(suffix);
  if (power < 0) return fail("has an unknown suffix (use k, M, G or T)");
  for (int i = 0; i < power; ++i) {
    if (number > std::numeric_limits<uint64_t>::max() / 1024) return fail("is too large");
    number *= 1024;
  }
  return number;
}

std::vector<uint64_t> parse_sweep(std::string_view text, std::string_view what) {
  std::vector<uint64_t> values;
  size_t start = 0;
  while (true) {
    size_t end = text.find(',', start);
    values.push_back(parse_size(text.substr(start, end - start), what));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return values;
}

std::string format_size(uint64_t value) {
  static constexpr const char* suffixes[] = {"", "k", "M", "G", "T"};
  int power = 0;
  while (power < 4 && value != 0 && value % 1024 == 0) {
    value /= 1024;
    ++power;
  }
  return std::to_string(value) + suffixes[power];
}

std::string format_bytes(uint64_t bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (unit < 4 && value >= 1024) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.4g %s", value, units[unit]);
  return text;
}

CLI::Validator size_validator() {
  return CLI::Validator(
      [](std::string& input) -> std::string {
        try {
          input = std::to_string(parse_size(input));
          return {};
        } catch (const UsageError& e) {
          return e.what();
        }
      },
      "SIZE", "size");
}

namespace {

CLI::Validator number_at_least(double least, bool strict, const std::string& what) {
  return CLI::Validator(
      [least, strict, what](std::string& input) -> std::string {
        double value = 0;
        const bool number = CLI::detail::lexical_cast(input, value) && std::isfinite(value);
        if (number && (strict ? value > least : value >= least)) return {};
        return "must be " + what + ", not '" + input + "'";
      },
      strict ? "POSITIVE" : "NONNEGATIVE", strict ? "positive" : "non-negative");
}

}  // namespace

CLI::Validator positive_number() {
  return number_at_least(0, true, "a positive number");
}

CLI::Validator non_negative_number() {
  return number_at_least(0, false, "a non-negative number");
}

void reject_given(const CLI::App& cli, const std::vector<std::string>& names,
                  const std::string& reason) {
  for (const std::string& name : names) {
    const CLI::Option* option = cli.get_option_no_throw(name);
    if (option != nullptr && option->count() > 0) throw UsageError(name + " " + reason);
  }
}

}  // namespace paralab
