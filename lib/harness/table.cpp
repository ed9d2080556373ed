#include "harness/table.hpp"

#include <cstdarg>
#include <cstdio>

#include "core/errors.hpp"

namespace paralab {

namespace {
// Appends " " and `text` right-aligned in `width` characters.
void append_right(std::string& line, const std::string& text, int width) {
  line.push_back(' ');
  if (text.size() < static_cast<size_t>(width)) line.append(width - text.size(), ' ');
  line.append(text);
}
}  // namespace

Table::Table(const World& world, std::vector<Column> columns)
    : world_(world), columns_(std::move(columns)) {}

void Table::print_header() const {
  std::string names = "#";
  std::string units = "#";
  for (const auto& c : columns_) {
    append_right(names, c.name, c.width);
    append_right(units, c.units, c.width);
  }
  world_.printf("%s\n%s\n", names.c_str(), units.c_str());
}

void Table::print_row(const std::vector<std::string>& cells) const {
  if (cells.size() != columns_.size()) throw RuntimeError("Table: row and header differ in size");
  std::string line = " ";
  for (size_t i = 0; i < cells.size(); ++i) append_right(line, cells[i], columns_[i].width);
  world_.printf("%s\n", line.c_str());
}

std::string cell(const char* format, ...) {
  char text[64];
  va_list args;
  va_start(args, format);
  std::vsnprintf(text, sizeof text, format, args);
  va_end(args);
  return text;
}

}  // namespace paralab
