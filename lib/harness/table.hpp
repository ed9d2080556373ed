// table.hpp: the stdout table every app prints (nccl-tests style): a header,
// then one row per sweep point as it finishes, printed by rank 0.
#pragma once

#include <string>
#include <vector>

#include "core/world.hpp"

namespace paralab {

struct Column {
  std::string name;   // header text
  std::string units;  // second header line, e.g. "(us)"; may be empty
  int width = 10;
};

class Table {
 public:
  Table(const World& world, std::vector<Column> columns);
  void print_header() const;
  // One cell per column; cells wider than their column are not cut.
  void print_row(const std::vector<std::string>& cells) const;

 private:
  const World& world_;
  std::vector<Column> columns_;
};

// printf-style formatting of one cell.
std::string cell(const char* format, ...) __attribute__((format(printf, 1, 2)));

}  // namespace paralab
