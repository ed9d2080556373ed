// grid.hpp: named Cartesian process grids, e.g. tp x cp x pp x dp, with one
// sub-communicator per dimension (the ranks that differ only along it).
#pragma once

#include <mpi.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace paralab {

// Owns an MPI communicator and frees it; move-only.
class CommHandle {
 public:
  CommHandle() = default;
  explicit CommHandle(MPI_Comm comm) : comm_(comm) {}
  ~CommHandle() { reset(); }
  CommHandle(CommHandle&& other) noexcept : comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}
  CommHandle& operator=(CommHandle&& other) noexcept;
  CommHandle(const CommHandle&) = delete;
  CommHandle& operator=(const CommHandle&) = delete;
  MPI_Comm get() const { return comm_; }
  void reset();

 private:
  MPI_Comm comm_ = MPI_COMM_NULL;
};

struct GridDim {
  std::string name;
  int size = 1;
};

// Parses "tp=2,cp=4,pp=1,dp=2" (names and sizes >= 1, no repeats).
// Throws UsageError on malformed input.
std::vector<GridDim> parse_grid(std::string_view text);

class ProcessGrid {
 public:
  // dims are listed innermost first: in {tp, cp, pp, dp}, tp varies fastest
  // over consecutive world ranks, so a tensor-parallel group stays on a node.
  // Collective over `parent`. Throws UsageError (on every rank) if the
  // product of the sizes is not the size of `parent`.
  ProcessGrid(MPI_Comm parent, std::vector<GridDim> dims);

  MPI_Comm comm() const { return cart_.get(); }
  int rank() const { return rank_; }
  int size() const { return size_; }
  const std::vector<GridDim>& dims() const { return dims_; }

  int size(std::string_view dim) const { return dims_[index(dim)].size; }
  int coord(std::string_view dim) const { return coords_[index(dim)]; }
  // Communicator along one dimension; its rank equals coord(dim).
  MPI_Comm comm(std::string_view dim) const { return along_[index(dim)].get(); }
  // Collective over the grid: a communicator spanning several dimensions.
  CommHandle make_sub_comm(std::initializer_list<std::string_view> dims) const;
  // World rank of the grid rank at the given coordinates (innermost first).
  int rank_at(const std::vector<int>& coords) const;

  std::string describe() const;  // "tp=2 x cp=2 x pp=1 x dp=1"

 private:
  size_t index(std::string_view dim) const;

  std::vector<GridDim> dims_;
  std::vector<int> coords_;
  CommHandle cart_;
  std::vector<CommHandle> along_;
  int rank_ = 0;
  int size_ = 1;
};

}  // namespace paralab
