// hardware.hpp: hardware profiles (GPU throughput and the two link classes
// of a cluster) for the simulator: built-in ones by name, user ones as JSON.
//
// The built-in numbers, their sources and what is assumed are in docs/sim.md;
// the efficiencies are starting values that calibration against the papers'
// tables replaces.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sim/links.hpp"

namespace paralab::sim {

struct HardwareProfile {
  std::string name;
  std::string description;
  double bf16_peak_flops = 0;  // dense BF16 tensor-core peak of one GPU, FLOP/s
  double fp32_peak_flops = 0;  // FP32 (non-tensor) peak of one GPU, FLOP/s
  // Achieved fraction of bf16_peak_flops by attention kernels (FlashAttention
  // class) and by large GEMMs; compute time = flops / (peak * efficiency).
  double attention_efficiency = 0;
  double gemm_efficiency = 0;
  // Optional: the attention efficiency as a function of the keys one call
  // attends to, (keys, efficiency) points with ascending keys, interpolated
  // in log(keys) and held constant past the ends; empty = attention_efficiency
  // for every call. Kernels slow down as K/V outgrow the caches (CPUs) or
  // fill fewer waves (GPUs); calibrated profiles record it.
  std::vector<std::pair<double, double>> attention_efficiency_by_keys;
  // Achieved device-memory bandwidth (memory-bound kernels such as LSE
  // merges), bytes/s, and the fixed cost of one kernel call (launch and
  // tail), seconds: what makes many small calls slower than one big one.
  double memory_bytes_per_s = 0;
  double kernel_overhead_s = 0;
  // How collectives and point-to-point messages are costed (sim/collectives.hpp):
  // "alpha-beta" (one alpha-beta line per link, what a calibrated MPI profile
  // measures) or "nccl" (NCCL's own tuning model: LL / LL128 / Simple protocols,
  // ring and tree, per-hop latencies, over the links' bandwidths).
  std::string comm_library = "alpha-beta";
  // GPU shape effects; 0 turns each off (CPU profiles). Streaming multiprocessors:
  // an attention call of q query rows and h heads runs ceil(q / tile_rows) * h
  // thread blocks of attention_tile_rows rows, and a call with fewer blocks than
  // SMs (short query chunks) leaves SMs idle.
  int sm_count = 0;
  int attention_tile_rows = 128;
  // Fraction of a GPU's compute rate lost while a transfer runs beside it (the
  // SMs NCCL's kernels occupy, HBM traffic they add).
  double comm_compute_slowdown = 0;
  int gpus_per_node = 1;
  LinkModel intra_node;  // between two GPUs of one node (per GPU, per direction)
  LinkModel inter_node;  // between GPUs of different nodes (per GPU, per direction)

  // The link a message from rank a to rank b crosses, with rank r on node
  // r / gpus_per_node (ranks packed node by node, as launchers place them).
  const LinkModel& link_between(int rank_a, int rank_b) const;
};

// The built-in profiles: "h100-gtt" and "h100-gti" (the ring-attention paper's clusters),
// "cluster-100g-tcp" and "cluster-400g-rdma" (8-GPU nodes for the DLRM exchange; docs/sim.md).
const std::vector<HardwareProfile>& builtin_profiles();
std::vector<std::string> builtin_profile_names();

// A built-in profile by name. Throws paralab::UsageError naming the known
// profiles when there is none of that name.
HardwareProfile find_profile(std::string_view name);

// JSON form: the struct's fields by name, links as objects with "name",
// "alpha_s" and either "beta_s_per_byte" or "bandwidth_bytes_per_s".
// from_json validates (positive peaks, efficiencies in (0, 1], known keys
// only) and throws paralab::UsageError naming the offending field.
nlohmann::json profile_to_json(const HardwareProfile& profile);
HardwareProfile profile_from_json(const nlohmann::json& json);

// Files; errors (unreadable file, bad JSON, bad field) throw
// paralab::UsageError with the path in the message.
HardwareProfile load_profile(const std::string& path);
void save_profile(const HardwareProfile& profile, const std::string& path);

// What a --profile option takes: a built-in name, or else a JSON file path
// (anything ending in .json or containing a '/').
HardwareProfile resolve_profile(const std::string& name_or_path);
// Whether resolve_profile reads `name_or_path` as a file (it ends in .json or names a folder).
bool is_profile_path(const std::string& name_or_path);

}  // namespace paralab::sim
