// hardware.cpp: built-in hardware profiles and their JSON form.
#include "sim/hardware.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/errors.hpp"

namespace paralab::sim {
namespace {

using nlohmann::json;

// Sources for every number below are in docs/sim.md ("Built-in profiles").
constexpr double kH100Bf16PeakFlops = 800e12;  // the CP paper's per-GPU figure
constexpr double kH100Fp32PeakFlops = 67e12;   // H100 SXM datasheet, non-tensor FP32
constexpr double kAttentionEfficiency = 0.63;  // CP paper: 63% FLOPS utilisation at 1M tokens
constexpr double kGemmEfficiency = 0.75;       // typical large cuBLAS BF16 GEMM on H100
constexpr double kHbmBandwidth = 2.7e12;       // 80% of the H100 SXM's 3.35 TB/s HBM3
constexpr double kKernelOverhead = 4e-6;       // launch + tail of one CUDA kernel
constexpr int kH100Sms = 132;                  // H100 SXM5 datasheet
constexpr int kFlashAttentionTileRows = 128;   // FlashAttention-3's forward query tile, D 128
// NCCL runs a ring transfer on 2 channels per network peer, one thread block
// (one SM) each: 2 of 132 SMs leave the attention kernel while it is in flight.
constexpr double kCommComputeSlowdown = 2.0 / kH100Sms;

// NVLink 4 through NVSwitch: 450 GB/s per direction per GPU line rate;
// about 82% of it is what point-to-point copies achieve.
const LinkModel kNvlink{"nvlink", 5e-6, 1.0 / 370e9};
// 400 Gb/s RoCE per GPU = 50 GB/s line rate; assume 80% achieved.
const LinkModel kRdma400{"rdma-400g", 10e-6, 1.0 / 40e9};
// 100 Gb/s frontend TCP per GPU; the paper reports about 3 GB/s achieved.
const LinkModel kTcp100{"tcp-100g", 50e-6, 1.0 / 3e9};

HardwareProfile h100(std::string name, std::string description, LinkModel inter) {
  HardwareProfile p;
  p.name = std::move(name);
  p.description = std::move(description);
  p.bf16_peak_flops = kH100Bf16PeakFlops;
  p.fp32_peak_flops = kH100Fp32PeakFlops;
  p.attention_efficiency = kAttentionEfficiency;
  p.gemm_efficiency = kGemmEfficiency;
  p.memory_bytes_per_s = kHbmBandwidth;
  p.kernel_overhead_s = kKernelOverhead;
  p.comm_library = "nccl";
  p.sm_count = kH100Sms;
  p.attention_tile_rows = kFlashAttentionTileRows;
  p.comm_compute_slowdown = kCommComputeSlowdown;
  p.gpus_per_node = 8;
  p.intra_node = kNvlink;
  p.inter_node = std::move(inter);
  return p;
}

[[noreturn]] void bad_field(const std::string& field, const std::string& why) {
  throw UsageError("hardware profile: field '" + field + "' " + why);
}

const json& require(const json& object, const std::string& key, const std::string& where) {
  if (!object.contains(key)) bad_field(where + key, "is missing");
  return object.at(key);
}

double number(const json& object, const std::string& key, const std::string& where) {
  const json& value = require(object, key, where);
  if (!value.is_number()) bad_field(where + key, "must be a number");
  // No hardware rate, latency or size comes near 1e30 in any unit used here; beyond it (or a
  // literal that overflowed to infinity) the simulator's arithmetic would be meaningless.
  const double x = value.get<double>();
  if (!std::isfinite(x) || std::fabs(x) > 1e30)
    bad_field(where + key, "must be a finite number no larger than 1e30");
  return x;
}

std::string text(const json& object, const std::string& key, const std::string& where) {
  const json& value = require(object, key, where);
  if (!value.is_string()) bad_field(where + key, "must be a string");
  return value.get<std::string>();
}

// Typos must not silently fall back to defaults: reject keys we do not know.
void reject_unknown_keys(const json& object, const std::set<std::string>& known,
                         const std::string& where) {
  for (const auto& item : object.items())
    if (!known.contains(item.key())) bad_field(where + item.key(), "is not a known field");
}

json link_to_json(const LinkModel& link) {
  return json{
      {"name", link.name}, {"alpha_s", link.alpha_s}, {"beta_s_per_byte", link.beta_s_per_byte}};
}

LinkModel link_from_json(const json& object, const std::string& field) {
  const std::string where = field + ".";
  if (!object.is_object()) bad_field(field, "must be an object");
  reject_unknown_keys(object, {"name", "alpha_s", "beta_s_per_byte", "bandwidth_bytes_per_s"},
                      where);
  LinkModel link;
  link.name = object.contains("name") ? text(object, "name", where) : field;
  link.alpha_s = number(object, "alpha_s", where);
  if (link.alpha_s < 0) bad_field(where + "alpha_s", "must be >= 0");
  const bool has_beta = object.contains("beta_s_per_byte");
  if (has_beta == object.contains("bandwidth_bytes_per_s"))
    bad_field(field, "needs exactly one of beta_s_per_byte and bandwidth_bytes_per_s");
  if (has_beta) {
    link.beta_s_per_byte = number(object, "beta_s_per_byte", where);
    if (link.beta_s_per_byte < 0) bad_field(where + "beta_s_per_byte", "must be >= 0");
  } else {
    const double bandwidth = number(object, "bandwidth_bytes_per_s", where);
    if (!(bandwidth > 0)) bad_field(where + "bandwidth_bytes_per_s", "must be > 0");
    link.beta_s_per_byte = 1.0 / bandwidth;
  }
  return link;
}

double positive(const json& object, const std::string& key) {
  const double value = number(object, key, "");
  if (!(value >= 1e-30)) bad_field(key, "must be > 0 (and at least 1e-30)");
  return value;
}

double efficiency(const json& object, const std::string& key) {
  const double value = number(object, key, "");
  if (!(value > 0 && value <= 1)) bad_field(key, "must be in (0, 1]");
  return value;
}

// [[keys, efficiency], ...]: keys ascending and positive, efficiencies in (0, 1].
std::vector<std::pair<double, double>> efficiency_curve(const json& value) {
  const std::string field = "attention_efficiency_by_keys";
  if (!value.is_array()) bad_field(field, "must be a list of [keys, efficiency] pairs");
  std::vector<std::pair<double, double>> curve;
  for (const json& point : value) {
    if (!point.is_array() || point.size() != 2 || !point[0].is_number() || !point[1].is_number())
      bad_field(field, "must be a list of [keys, efficiency] pairs");
    const double keys = point[0].get<double>(), eff = point[1].get<double>();
    if (!(keys > 0) || (!curve.empty() && keys <= curve.back().first))
      bad_field(field, "needs positive, strictly ascending keys");
    if (!(eff > 0 && eff <= 1)) bad_field(field, "needs efficiencies in (0, 1]");
    curve.emplace_back(keys, eff);
  }
  return curve;
}

// An integer field from `min` to 2^20.
int small_count(const json& object, const std::string& key, int min) {
  const json& value = require(object, key, "");
  if (!value.is_number_integer() || value.get<long long>() < min ||
      value.get<long long>() > (1 << 20))
    bad_field(key, "must be an integer from " + std::to_string(min) + " to 1048576");
  return value.get<int>();
}

std::string join_names() {
  std::string names;
  for (const auto& name : builtin_profile_names()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

}  // namespace

const LinkModel& HardwareProfile::link_between(int rank_a, int rank_b) const {
  return rank_a / gpus_per_node == rank_b / gpus_per_node ? intra_node : inter_node;
}

const std::vector<HardwareProfile>& builtin_profiles() {
  static const std::vector<HardwareProfile> profiles{
      h100("h100-gtt",
           "Grand Teton Training: 8x H100 per node, NVLink, 400 Gb/s RDMA per GPU (CP paper)",
           kRdma400),
      h100("h100-gti",
           "Grand Teton Inference: 8x H100 per node, NVLink, 100 Gb/s TCP per GPU, ~3 GB/s "
           "achieved (CP paper)",
           kTcp100),
      // Two generic GPU clusters for dlrm_a2a's simulate mode (issue 5):
      // H100-class nodes of 8 GPUs, one NIC per GPU; only the inter-node
      // link differs. Sources and assumptions: docs/sim.md ("Cluster
      // profiles for dlrm_a2a").
      h100("cluster-100g-tcp",
           "8x H100 per node, NVLink, 100 Gb/s TCP per GPU: 12.5 GB/s line rate, ~70% "
           "achieved (8.75 GB/s), alpha 30 us",
           LinkModel{"tcp-100g-eff", 30e-6, 1.0 / 8.75e9}),
      h100("cluster-400g-rdma",
           "8x H100 per node, NVLink, 400 Gb/s RDMA per GPU: 50 GB/s line rate, ~80% achieved "
           "(40 GB/s), alpha 4 us",
           LinkModel{"rdma-400g-eff", 4e-6, 1.0 / 40e9}),
  };
  return profiles;
}

std::vector<std::string> builtin_profile_names() {
  std::vector<std::string> names;
  for (const auto& profile : builtin_profiles()) names.push_back(profile.name);
  return names;
}

HardwareProfile find_profile(std::string_view name) {
  for (const auto& profile : builtin_profiles())
    if (profile.name == name) return profile;
  throw UsageError("unknown hardware profile '" + std::string(name) + "'; known: " + join_names() +
                   " (or a JSON file)");
}

nlohmann::json profile_to_json(const HardwareProfile& profile) {
  return json{{"name", profile.name},
              {"description", profile.description},
              {"bf16_peak_flops", profile.bf16_peak_flops},
              {"fp32_peak_flops", profile.fp32_peak_flops},
              {"attention_efficiency", profile.attention_efficiency},
              {"gemm_efficiency", profile.gemm_efficiency},
              {"attention_efficiency_by_keys", profile.attention_efficiency_by_keys},
              {"memory_bytes_per_s", profile.memory_bytes_per_s},
              {"kernel_overhead_s", profile.kernel_overhead_s},
              {"comm_library", profile.comm_library},
              {"sm_count", profile.sm_count},
              {"attention_tile_rows", profile.attention_tile_rows},
              {"comm_compute_slowdown", profile.comm_compute_slowdown},
              {"gpus_per_node", profile.gpus_per_node},
              {"intra_node", link_to_json(profile.intra_node)},
              {"inter_node", link_to_json(profile.inter_node)}};
}

HardwareProfile profile_from_json(const nlohmann::json& object) {
  if (!object.is_object()) throw UsageError("hardware profile: must be a JSON object");
  reject_unknown_keys(
      object,
      {"name", "description", "bf16_peak_flops", "fp32_peak_flops", "attention_efficiency",
       "gemm_efficiency", "attention_efficiency_by_keys", "memory_bytes_per_s", "kernel_overhead_s",
       "comm_library", "sm_count", "attention_tile_rows", "comm_compute_slowdown", "gpus_per_node",
       "intra_node", "inter_node"},
      "");
  HardwareProfile profile;
  profile.name = text(object, "name", "");
  profile.description = object.contains("description") ? text(object, "description", "") : "";
  profile.bf16_peak_flops = positive(object, "bf16_peak_flops");
  profile.fp32_peak_flops = positive(object, "fp32_peak_flops");
  profile.attention_efficiency = efficiency(object, "attention_efficiency");
  profile.gemm_efficiency = efficiency(object, "gemm_efficiency");
  if (object.contains("attention_efficiency_by_keys"))
    profile.attention_efficiency_by_keys = efficiency_curve(object["attention_efficiency_by_keys"]);
  profile.memory_bytes_per_s = positive(object, "memory_bytes_per_s");
  profile.kernel_overhead_s = number(object, "kernel_overhead_s", "");
  if (!(profile.kernel_overhead_s >= 0)) bad_field("kernel_overhead_s", "must be >= 0");
  // Optional (profiles written before these fields existed keep their meaning).
  if (object.contains("comm_library")) {
    profile.comm_library = text(object, "comm_library", "");
    if (profile.comm_library != "alpha-beta" && profile.comm_library != "nccl")
      bad_field("comm_library", "must be \"alpha-beta\" or \"nccl\"");
  }
  if (object.contains("sm_count")) profile.sm_count = small_count(object, "sm_count", 0);
  if (object.contains("attention_tile_rows"))
    profile.attention_tile_rows = small_count(object, "attention_tile_rows", 1);
  if (object.contains("comm_compute_slowdown")) {
    profile.comm_compute_slowdown = number(object, "comm_compute_slowdown", "");
    if (!(profile.comm_compute_slowdown >= 0 && profile.comm_compute_slowdown < 1))
      bad_field("comm_compute_slowdown", "must be in [0, 1)");
  }
  profile.gpus_per_node = small_count(object, "gpus_per_node", 1);
  profile.intra_node = link_from_json(require(object, "intra_node", ""), "intra_node");
  profile.inter_node = link_from_json(require(object, "inter_node", ""), "inter_node");
  return profile;
}

HardwareProfile load_profile(const std::string& path) {
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    throw UsageError("hardware profile '" + path + "' is a folder, not a JSON file");
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read hardware profile file '" + path + "'");
  try {
    return profile_from_json(json::parse(in));
  } catch (const json::exception& e) {
    throw UsageError("hardware profile file '" + path + "': " + e.what());
  } catch (const UsageError& e) {
    throw UsageError(path + ": " + e.what());
  }
}

void save_profile(const HardwareProfile& profile, const std::string& path) {
  std::ofstream out(path);
  if (!out) throw UsageError("cannot write hardware profile file '" + path + "'");
  out << profile_to_json(profile).dump(2) << '\n';
  if (!out) throw UsageError("error writing hardware profile file '" + path + "'");
}

bool is_profile_path(const std::string& name_or_path) {
  return name_or_path.ends_with(".json") || name_or_path.find('/') != std::string::npos;
}

HardwareProfile resolve_profile(const std::string& name_or_path) {
  return is_profile_path(name_or_path) ? load_profile(name_or_path) : find_profile(name_or_path);
}

}  // namespace paralab::sim
