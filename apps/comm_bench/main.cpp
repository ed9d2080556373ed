// comm_bench: point-to-point and collective bandwidth and latency over the
// paralab communication layer (MPI on the CPU, NCCL on CUDA), nccl-tests
// style. Its per-iteration times calibrate lib/sim's network models.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "collectives.hpp"
#include "comm/comm.hpp"
#include "core/grid.hpp"
#include "core/options.hpp"
#include "core/resources.hpp"
#include "core/stats.hpp"
#include "core/timer.hpp"
#include "harness/app.hpp"
#include "harness/limits.hpp"
#include "harness/table.hpp"
#include "sim/calibrate.hpp"

namespace paralab::comm_bench {
namespace {

struct Options {
  uint64_t min_bytes = 1024;
  uint64_t max_bytes = 64 << 20;
  uint64_t step_factor = 4;
  std::vector<std::string> ops = {"allreduce"};
  std::string dtype = "f32";
  std::string grid;   // e.g. "tp=2,dp=4"; empty: the whole world
  std::string along;  // the grid dimension whose groups run the operation
};

void add_options(CLI::App& cli, Options& o) {
  add_size_option(cli, "-b,--min-bytes", o.min_bytes, "Smallest message size in bytes (8k, 1M...)");
  add_size_option(cli, "-e,--max-bytes", o.max_bytes, "Largest message size in bytes");
  cli.add_option("-f,--step-factor", o.step_factor, "Multiply the size by this between points")
      ->check(CLI::Range(uint64_t{2}, uint64_t{1} << 20))
      ->capture_default_str();
  cli.add_option("--op", o.ops,
                 "Operations, a comma list of sendrecv, alltoall, alltoallv, allreduce, "
                 "allgather, reducescatter; or all")
      ->delimiter(',')
      ->check(CLI::IsMember(
          {"sendrecv", "alltoall", "alltoallv", "allreduce", "allgather", "reducescatter", "all"}))
      ->capture_default_str();
  cli.add_option("-d,--dtype", o.dtype, "Element type: f32, f64, bf16, i32, i64, u8")
      ->check(CLI::IsMember({"f32", "f64", "bf16", "i32", "i64", "u8"}))
      ->capture_default_str();
  cli.add_option("--grid", o.grid,
                 "Process grid NAME=SIZE,... innermost first (tp=2,dp=4); with --along, every "
                 "group along that dimension runs the operation at once");
  cli.add_option("--along", o.along, "Grid dimension whose groups communicate (needs --grid)");
}

// The communicator the operation runs on: the world, or one group of a grid.
std::unique_ptr<comm::Communicator> make_comm(App& app, const Options& o) {
  MPI_Comm world = app.world().comm();
  if (o.grid.empty() && !o.along.empty()) throw UsageError("--along needs --grid");
  if (o.grid.empty()) return comm::make_communicator(app.common().device, world);
  ProcessGrid grid(world, parse_grid(o.grid));
  if (o.along.empty())
    throw UsageError("--grid needs --along (the dimension to communicate along)");
  return comm::make_communicator(app.common().device, grid.comm(o.along));
}

std::vector<uint64_t> size_sweep(const Options& o) {
  if (o.min_bytes == 0) throw UsageError("--min-bytes must be at least 1");
  if (o.min_bytes > o.max_bytes)
    throw UsageError("--min-bytes (" + std::to_string(o.min_bytes) +
                     ") is larger than --max-bytes (" + std::to_string(o.max_bytes) + ")");
  std::vector<uint64_t> sizes;
  for (uint64_t s = o.min_bytes; s <= o.max_bytes; s *= o.step_factor) {
    sizes.push_back(s);
    if (s > o.max_bytes / o.step_factor) break;
  }
  return sizes;
}

// One sweep point of one operation: what was asked, the layout it became,
// and (on rank 0) what was measured.
struct Point {
  const Collective* op = nullptr;
  DType type = DType::f32;
  uint64_t size = 0;  // requested bytes
  Layout layout;      // rounded to whole elements and equal blocks
  int group_size = 1;
  TimeMatrix times = {};  // [iteration][rank], seconds
  Summary time_s = {};    // of the slowest rank per iteration
  double algbw_GBps = 0, busbw_GBps = 0;
  double busbw_to_copy_ratio = 0;  // 0: no measured limit (CUDA)
  int64_t wrong = -1;              // -1: not checked
};

void fill_send(Buffers& b, const Layout& l, DType type, int rank) {
  std::vector<unsigned char> host(l.send_count * dtype_size(type));
  for (size_t i = 0; i < l.send_count; ++i) store(type, host.data(), i, send_value(rank, i));
  b.send.upload(host.data(), host.size());
}

// Runs the operation once on freshly filled buffers and counts, over all
// ranks of the world (every group of a grid), the elements that differ from
// the expected values.
int64_t check_point(const Collective& op, comm::Communicator& c, Buffers& b, const Layout& l,
                    DType type, MPI_Comm world) {
  const size_t es = dtype_size(type);
  std::vector<unsigned char> host(l.recv_count * es, 0xff);  // poison: unwritten elements fail
  b.recv.upload(host.data(), host.size());
  fill_send(b, l, type, c.rank());
  op.run(c, b, l, type);
  c.synchronize();
  b.recv.download(host.data(), host.size());
  // bf16 sums over more than 16 ranks round partial sums; allow that rounding.
  const int n = c.size();
  const double tolerance = type == DType::bf16 && n > 16 ? (n - 1) * 16.0 * n / 256.0 : 0.0;
  int64_t wrong = 0;
  for (size_t i = 0; i < l.recv_count; ++i) {
    const double got = load(type, host.data(), i);
    if (!(std::fabs(got - op.expected(l, c.rank(), n, i, type)) <= tolerance)) ++wrong;
  }
  MPI_Allreduce(MPI_IN_PLACE, &wrong, 1, MPI_INT64_T, MPI_SUM, world);
  return wrong;
}

std::vector<double> time_iterations(const Collective& op, comm::Communicator& c, Buffers& b,
                                    const Layout& l, DType type, int warmup, int iters) {
  for (int i = 0; i < warmup; ++i) op.run(c, b, l, type);
  c.synchronize();
  std::vector<double> seconds;
  for (int i = 0; i < iters; ++i) {
    c.barrier();
    Stopwatch watch;
    op.run(c, b, l, type);
    c.synchronize();
    seconds.push_back(watch.seconds());
  }
  return seconds;
}

void record(App& app, const Point& p) {
  results::Group g = app.add_point();
  // group_size tells points apart only when a grid splits the world.
  std::vector<std::string> parameters = {"op", "dtype", "size", "ranks"};
  if (static_cast<size_t>(p.group_size) != p.times.ranks) parameters.push_back("group_size");
  g.attr("parameters", parameters);
  std::vector<std::string> metrics = {"time_us_median", "time_us_min", "time_us_max", "time_us_p95",
                                      "time_us_mean",   "algbw_GBps",  "busbw_GBps",  "wrong"};
  if (p.busbw_to_copy_ratio > 0) metrics.push_back("busbw_to_copy_ratio");
  g.attr("metrics", metrics);
  g.attr("op", std::string(p.op->name));
  g.attr("dtype", std::string(dtype_name(p.type)));
  g.attr("size", p.size);
  g.attr("bytes", p.layout.bytes);
  g.attr("count", p.layout.bytes / dtype_size(p.type));
  g.attr("ranks", p.times.ranks);
  g.attr("group_size", p.group_size);
  g.attr("iters", p.times.iterations);
  g.attr("time_us_median", p.time_s.median * 1e6);
  g.attr("time_us_min", p.time_s.min * 1e6);
  g.attr("time_us_max", p.time_s.max * 1e6);
  g.attr("time_us_p95", p.time_s.p95 * 1e6);
  g.attr("time_us_mean", p.time_s.mean * 1e6);
  g.attr("algbw_GBps", p.algbw_GBps);
  g.attr("busbw_GBps", p.busbw_GBps);
  g.attr("bus_factor", p.op->bus_factor(p.group_size));
  if (p.busbw_to_copy_ratio > 0) g.attr("busbw_to_copy_ratio", p.busbw_to_copy_ratio);
  g.attr("wrong", p.wrong);
  g.dataset("time_s", p.times.values, {p.times.iterations, p.times.ranks}, "s", "iteration,rank");
}

Table make_table(const World& world) {
  return Table(world, {{"size", "(B)", 12},
                       {"count", "(elements)", 12},
                       {"type", "", 5},
                       {"time", "(us)", 10},
                       {"min", "(us)", 10},
                       {"max", "(us)", 10},
                       {"algbw", "(GB/s)", 8},
                       {"busbw", "(GB/s)", 8},
                       {"bw/copy", "", 7},
                       {"#wrong", "", 7}});
}

// What every point of a run shares.
struct Bench {
  App& app;
  comm::Communicator& comm;
  DType type;
  double copy_GBps;  // the measured limit busbw is compared with; 0 when none
};

// The alpha-beta line of one link step through this op's points (lib/sim's
// calibration; docs/sim.md), printed and kept in /fit_<op> for simulate-mode
// profiles. Ops the model does not cover, or too few points, get no fit.
void record_fit(App& app, const Collective& op, const std::vector<sim::CommSample>& samples) {
  const std::string name(op.name);
  if (samples.size() < 2 || samples.front().n_ranks < 2) return;
  sim::AlphaBetaFit fit;
  try {
    fit = sim::calibrate_link(samples, {name, {name}});
  } catch (const std::invalid_argument&) {
    return;
  }
  app.world().printf(
      "# %s: alpha-beta fit per link step: alpha %.2f us, bandwidth %.3f GB/s (worst point "
      "%.0f%% off%s)\n",
      name.c_str(), fit.link.alpha_s * 1e6, fit.link.bandwidth_bytes_per_s() / 1e9,
      fit.max_relative_error * 100, fit.alpha_clamped ? ", alpha clamped to 0" : "");
  results::Group g = app.add_group("fit_" + name);
  g.attr("alpha_s", fit.link.alpha_s);
  g.attr("beta_s_per_byte", fit.link.beta_s_per_byte);
  g.attr("max_relative_error", fit.max_relative_error);
  g.attr("alpha_clamped", fit.alpha_clamped ? 1 : 0);
}

// Times one point (and checks it under --check); the summary is on rank 0.
Point measure_point(const Bench& bench, const Collective& op, uint64_t size, const Layout& layout) {
  App& app = bench.app;
  comm::Communicator& c = bench.comm;
  const DType type = bench.type;
  const auto& common = app.common();
  Point p{.op = &op, .type = type, .size = size, .layout = layout, .group_size = c.size()};
  Buffers b{Buffer(c.device(), layout.send_count * dtype_size(type)),
            Buffer(c.device(), layout.recv_count * dtype_size(type))};
  fill_send(b, layout, type, c.rank());
  auto local = time_iterations(op, c, b, layout, type, common.warmup, common.iters);
  if (common.check) p.wrong = check_point(op, c, b, layout, type, app.world().comm());
  p.times = gather_samples(app.world().comm(), local);
  if (app.world().is_root()) {
    p.time_s = summarize(p.times.max_over_ranks());
    p.algbw_GBps = static_cast<double>(layout.bytes) / p.time_s.median / 1e9;
    p.busbw_GBps = p.algbw_GBps * op.bus_factor(c.size());
    if (bench.copy_GBps > 0) p.busbw_to_copy_ratio = p.busbw_GBps / bench.copy_GBps;
  }
  return p;
}

void print_row(const Table& table, const Point& p, bool checked) {
  table.print_row({cell("%zu", p.layout.bytes), cell("%zu", p.layout.bytes / dtype_size(p.type)),
                   std::string(dtype_name(p.type)), cell("%.2f", p.time_s.median * 1e6),
                   cell("%.2f", p.time_s.min * 1e6), cell("%.2f", p.time_s.max * 1e6),
                   cell("%.3f", p.algbw_GBps), cell("%.3f", p.busbw_GBps),
                   p.busbw_to_copy_ratio > 0 ? cell("%.0f%%", 100 * p.busbw_to_copy_ratio) : "N/A",
                   checked ? cell("%lld", static_cast<long long>(p.wrong)) : "N/A"});
}

// Runs every size of one operation; returns the total count of wrong elements.
int64_t run_operation(const Bench& bench, const Collective& op,
                      const std::vector<uint64_t>& sizes) {
  App& app = bench.app;
  comm::Communicator& c = bench.comm;
  const DType type = bench.type;
  World& world = app.world();
  Table table = make_table(world);
  world.printf("#\n# %s\n", std::string(op.name).c_str());
  table.print_header();
  int64_t wrong_total = 0;
  double busbw_sum = 0;
  int points = 0;
  std::vector<sim::CommSample> samples;
  for (uint64_t size : sizes) {
    const Layout layout = op.layout(size, dtype_size(type), c.rank(), c.size());
    if (layout.bytes == 0) {
      world.printf("# %llu B: skipped, less than one %s element per rank\n",
                   static_cast<unsigned long long>(size), std::string(dtype_name(type)).c_str());
      continue;
    }
    const Point p = measure_point(bench, op, size, layout);
    wrong_total += std::max<int64_t>(p.wrong, 0);
    if (!world.is_root()) continue;
    record(app, p);
    print_row(table, p, app.common().check);
    busbw_sum += p.busbw_GBps;
    ++points;
    samples.push_back(
        {std::string(op.name), p.group_size, double(p.layout.bytes), p.time_s.median});
  }
  if (points > 0)
    world.printf("# %s: average bus bandwidth %.3f GB/s\n", std::string(op.name).c_str(),
                 busbw_sum / points);
  if (world.is_root()) record_fit(app, op, samples);
  return wrong_total;
}

// The buffers of the largest point of any operation: send and receive buffers and the host
// copy that fills or checks them.
uint64_t bytes_needed(const std::vector<const Collective*>& ops, const std::vector<uint64_t>& sizes,
                      DType type, const comm::Communicator& c) {
  if (sizes.empty()) return 0;
  const size_t es = dtype_size(type);
  uint64_t most = 0;
  for (const Collective* op : ops) {
    const Layout l = op->layout(sizes.back(), es, c.rank(), c.size());
    const double bytes = double(es) * (double(l.send_count) + double(l.recv_count) +
                                       double(std::max(l.send_count, l.recv_count)));
    most = std::max(most, bytes >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(bytes));
  }
  return most;
}

// On the CPU, busbw is compared with host memory copy bandwidth, measured
// here with every rank copying at once (the shared-memory transport's
// medium); across nodes the network is the tighter limit. On CUDA, NVLink's
// limit cannot be measured from one GPU, so none is reported.
double measure_limit(App& app) {
  if (app.common().device != Device::cpu) return 0;
  const CopyLimit limit = measure_copy_limit(app.world().comm());
  app.world().printf(
      "# limit: host memcpy %.2f GB/s per rank (slowest rank %.2f) with all ranks "
      "copying %s at once; bw/copy = busbw / that\n",
      limit.GBps_per_rank, limit.GBps_slowest_rank, format_bytes(limit.bytes).c_str());
  if (app.world().is_root()) {
    results::Group g = app.add_group("limits");
    g.attr("copy_GBps", limit.GBps_per_rank);
    g.attr("copy_GBps_slowest_rank", limit.GBps_slowest_rank);
    g.attr("copy_bytes", limit.bytes);
  }
  return limit.GBps_per_rank;
}

void run(App& app) {
  Options o;
  add_options(app.cli(), o);
  app.parse();
  const std::vector<uint64_t> sizes = size_sweep(o);
  const DType type = parse_dtype(o.dtype);
  std::vector<const Collective*> ops;
  for (const auto& name : o.ops) {
    if (name == "all")
      for (const auto& c : collectives()) ops.push_back(&c);
    else
      ops.push_back(&find_collective(name));
  }

  auto comm = make_comm(app, o);
  check_memory(app.world(), bytes_needed(ops, sizes, type, *comm),
               "comm_bench -e " + format_size(o.max_bytes), "lower -e/--max-bytes");
  app.open_results(comm->backend());
  World& world = app.world();
  world.printf("# comm_bench: %d ranks on %zu host(s), backend %s, device %s\n", world.size(),
               app.hosts().size(), std::string(comm->backend()).c_str(),
               std::string(device_label(app.common().device)).c_str());
  if (!o.grid.empty())
    world.printf("# grid %s: %d groups of %d ranks along '%s' communicate at once\n",
                 o.grid.c_str(), world.size() / comm->size(), comm->size(), o.along.c_str());
  world.printf("# sizes %s..%s bytes x%llu, %d iterations (+%d warm-up), check %s\n",
               format_size(o.min_bytes).c_str(), format_size(o.max_bytes).c_str(),
               static_cast<unsigned long long>(o.step_factor), app.common().iters,
               app.common().warmup, app.common().check ? "on" : "off");
  Bench bench{app, *comm, type, measure_limit(app)};
  int64_t wrong = 0;
  for (const Collective* op : ops) wrong += run_operation(bench, *op, sizes);
  app.finish();
  if (app.common().check) {
    world.printf("# check: %s (%lld wrong elements)\n", wrong == 0 ? "passed" : "FAILED",
                 static_cast<long long>(wrong));
    if (wrong != 0)
      throw CheckFailed(std::to_string(wrong) + " elements differ from the reference");
  }
}

}  // namespace
}  // namespace paralab::comm_bench

int main(int argc, char** argv) {
  return paralab::run_app(argc, argv,
                          {.name = "comm_bench",
                           .description = "paralab comm_bench: point-to-point and collective "
                                          "bandwidth and latency (nccl-tests style)",
                           .has_seed = false},  // its inputs are a fixed pattern
                          paralab::comm_bench::run);
}
