#include "core/grid.hpp"

#include <algorithm>
#include <charconv>

#include "core/errors.hpp"

namespace paralab {

CommHandle& CommHandle::operator=(CommHandle&& other) noexcept {
  if (this != &other) {
    reset();
    comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
  }
  return *this;
}

void CommHandle::reset() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (comm_ != MPI_COMM_NULL && !finalised) MPI_Comm_free(&comm_);
  comm_ = MPI_COMM_NULL;
}

std::vector<GridDim> parse_grid(std::string_view text) {
  std::vector<GridDim> dims;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = std::min(text.find(',', start), text.size());
    std::string_view item = text.substr(start, end - start);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0)
      throw UsageError("grid entry '" + std::string(item) + "' is not NAME=SIZE (in '" +
                       std::string(text) + "')");
    GridDim dim{std::string(item.substr(0, eq)), 0};
    std::string_view number = item.substr(eq + 1);
    auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), dim.size);
    if (ec != std::errc() || ptr != number.data() + number.size() || dim.size < 1)
      throw UsageError("grid size '" + std::string(number) + "' of '" + dim.name +
                       "' is not a positive integer");
    for (const auto& d : dims)
      if (d.name == dim.name) throw UsageError("grid dimension '" + dim.name + "' given twice");
    dims.push_back(std::move(dim));
    start = end + 1;
  }
  return dims;
}

ProcessGrid::ProcessGrid(MPI_Comm parent, std::vector<GridDim> dims) : dims_(std::move(dims)) {
  if (dims_.empty()) throw UsageError("a process grid needs at least one dimension");
  int parent_size = 0;
  MPI_Comm_size(parent, &parent_size);
  long product = 1;
  for (const auto& d : dims_) {
    if (d.size < 1) throw UsageError("grid dimension '" + d.name + "' must be at least 1");
    product *= d.size;
  }
  if (product != parent_size)
    throw UsageError("process grid " + describe() + " needs " + std::to_string(product) +
                     " ranks but the run has " + std::to_string(parent_size));

  // MPI's Cartesian order is row-major (last dimension fastest), so the
  // innermost-first list is reversed. reorder=0 keeps the rank layout fixed.
  const int n = static_cast<int>(dims_.size());
  std::vector<int> sizes(n), periods(n, 0);
  for (int i = 0; i < n; ++i) sizes[i] = dims_[n - 1 - i].size;
  MPI_Comm cart;
  MPI_Cart_create(parent, n, sizes.data(), periods.data(), 0, &cart);
  cart_ = CommHandle(cart);
  MPI_Comm_rank(cart, &rank_);
  MPI_Comm_size(cart, &size_);

  std::vector<int> mpi_coords(n);
  MPI_Cart_coords(cart, rank_, n, mpi_coords.data());
  coords_.resize(n);
  for (int i = 0; i < n; ++i) coords_[i] = mpi_coords[n - 1 - i];

  for (int i = 0; i < n; ++i) {
    std::vector<int> keep(n, 0);
    keep[n - 1 - i] = 1;
    MPI_Comm sub;
    MPI_Cart_sub(cart, keep.data(), &sub);
    along_.emplace_back(sub);
  }
}

CommHandle ProcessGrid::make_sub_comm(std::initializer_list<std::string_view> names) const {
  const int n = static_cast<int>(dims_.size());
  std::vector<int> keep(n, 0);
  for (auto name : names) keep[n - 1 - static_cast<int>(index(name))] = 1;
  MPI_Comm sub;
  MPI_Cart_sub(cart_.get(), keep.data(), &sub);
  return CommHandle(sub);
}

int ProcessGrid::rank_at(const std::vector<int>& coords) const {
  const int n = static_cast<int>(dims_.size());
  if (static_cast<int>(coords.size()) != n)
    throw UsageError("rank_at: wrong number of coordinates");
  std::vector<int> mpi_coords(n);
  for (int i = 0; i < n; ++i) mpi_coords[i] = coords[n - 1 - i];
  int r = 0;
  MPI_Cart_rank(cart_.get(), mpi_coords.data(), &r);
  return r;
}

std::string ProcessGrid::describe() const {
  std::string text;
  for (const auto& d : dims_) {
    if (!text.empty()) text += " x ";
    text += d.name + "=" + std::to_string(d.size);
  }
  return text;
}

size_t ProcessGrid::index(std::string_view dim) const {
  for (size_t i = 0; i < dims_.size(); ++i)
    if (dims_[i].name == dim) return i;
  throw UsageError("process grid " + describe() + " has no dimension '" + std::string(dim) + "'");
}

}  // namespace paralab
