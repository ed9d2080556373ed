#include "pvf/campaign.hpp"

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/errors.hpp"

namespace paralab::pvf {

std::string describe(const Cell& cell, const Target& target) {
  return target.component_name(cell.component) + " " + cell.fault.name() + " " + name(cell.dtype) +
         " " + name(cell.bits);
}

std::vector<Cell> make_cells(const std::vector<int>& components,
                             const std::vector<FaultModel>& faults,
                             const std::vector<DType>& dtypes,
                             const std::vector<BitClass>& classes) {
  for (BitClass b : classes) {
    bool any = false;
    for (DType d : dtypes) any = any || class_valid(d, b);
    if (!any) throw UsageError("bit class " + name(b) + " exists in none of the requested types");
  }
  std::vector<Cell> cells;
  for (DType d : dtypes)
    for (int c : components)
      for (const FaultModel& f : faults)
        for (BitClass b : classes)
          if (class_valid(d, b)) cells.push_back({c, f, d, b});
  if (cells.empty())
    throw UsageError("no cells: give components, fault models, types and bit classes");
  return cells;
}

bool cell_finished(const CellCounts& counts, const CampaignConfig& config) {
  if (counts.trials >= config.max_trials) return true;
  if (config.ci_width <= 0 || counts.trials == 0) return false;
  return wilson(counts.failures(), counts.trials, config.z).width() < config.ci_width;
}

namespace {

// The trials of one round this rank owns; adds its {incorrect, nan_inf} to local.
void run_round(Target& target, const Cell& cell, int index, int64_t first, int64_t count,
               const CampaignConfig& config, CampaignResult& result, int64_t (&local)[2]) {
  const uint64_t elements = target.elements(cell.component);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t t = first + config.rank; t < first + count; t += config.ranks) {
    Rng rng(trial_seed(config.seed, static_cast<uint64_t>(index), static_cast<uint64_t>(t)));
    const auto faults = sample_faults(cell.fault, cell.dtype, cell.bits, elements, rng);
    const Outcome o = faults.empty() ? Outcome::correct : target.inject(cell.component, faults);
    if (o == Outcome::incorrect) ++local[0];
    if (o == Outcome::nan_inf) ++local[1];
    ++result.local_injections;
  }
  result.local_inject_seconds +=
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

CampaignResult run_campaign(Target& target, const std::vector<Cell>& cells,
                            const CampaignConfig& config, const SumFn& sum,
                            const ProgressFn& progress, std::vector<CellCounts> start) {
  if (config.round < 1 || config.max_trials < 1 || config.ranks < 1)
    throw std::invalid_argument("run_campaign: round, max_trials and ranks must be positive");
  CampaignResult result;
  result.counts = start.empty() ? std::vector<CellCounts>(cells.size()) : std::move(start);
  if (result.counts.size() != cells.size())
    throw std::invalid_argument("run_campaign: start counts do not match the cells");
  bool prepared = false;
  DType current = DType::fp32;
  int64_t rounds = 0;
  for (size_t c = 0; c < cells.size(); ++c) {
    CellCounts& counts = result.counts[c];
    counts.done = counts.done || cell_finished(counts, config);
    while (!counts.done) {
      if (config.stop_after_rounds > 0 && rounds == config.stop_after_rounds) return result;
      if (!prepared || current != cells[c].dtype) {
        target.prepare(cells[c].dtype);
        prepared = true;
        current = cells[c].dtype;
      }
      const int64_t count = std::min(config.round, config.max_trials - counts.trials);
      int64_t local[2] = {0, 0};
      run_round(target, cells[c], static_cast<int>(c), counts.trials, count, config, result, local);
      sum(local);
      counts.trials += count;
      counts.incorrect += local[0];
      counts.nan_inf += local[1];
      counts.done = cell_finished(counts, config);
      ++rounds;
      if (config.rank == 0 && !config.checkpoint.empty())
        write_checkpoint(config.checkpoint, config.fingerprint, result.counts);
      if (progress) progress(static_cast<int>(c), counts);
    }
  }
  result.complete = true;
  return result;
}

uint64_t fingerprint(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : text) h = (h ^ ch) * 0x100000001b3ULL;
  return h;
}

void write_checkpoint(const std::string& path, uint64_t fp, const std::vector<CellCounts>& counts) {
  // Temporary name, then rename: an interrupted write leaves the previous
  // checkpoint whole.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << "paralab-pvf-checkpoint 1\n";
    char hex[32];
    std::snprintf(hex, sizeof hex, "%016" PRIx64, fp);
    out << "fingerprint " << hex << "\ncells " << counts.size() << "\n";
    for (size_t c = 0; c < counts.size(); ++c)
      out << c << ' ' << counts[c].trials << ' ' << counts[c].incorrect << ' ' << counts[c].nan_inf
          << ' ' << (counts[c].done ? 1 : 0) << '\n';
    out.flush();
    if (!out) throw RuntimeError("cannot write the checkpoint '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) throw RuntimeError("cannot rename the checkpoint to '" + path + "': " + ec.message());
}

std::vector<CellCounts> read_checkpoint(const std::string& path, uint64_t fp, size_t cells) {
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read the checkpoint '" + path + "'");
  std::string magic, key, hex;
  int version = 0;
  size_t n = 0;
  in >> magic >> version >> key >> hex;
  char want[32];
  std::snprintf(want, sizeof want, "%016" PRIx64, fp);
  if (magic != "paralab-pvf-checkpoint" || version != 1 || key != "fingerprint")
    throw UsageError("'" + path + "' is not a pvf checkpoint");
  if (hex != want)
    throw UsageError(
        "the checkpoint '" + path +
        "' belongs to another campaign (its options differ); remove it or drop --resume");
  in >> key >> n;
  if (key != "cells" || n != cells)
    throw UsageError("the checkpoint '" + path + "' has another number of cells");
  std::vector<CellCounts> counts(cells);
  for (size_t c = 0; c < cells; ++c) {
    size_t index = 0;
    int done = 0;
    CellCounts& k = counts[c];
    in >> index >> k.trials >> k.incorrect >> k.nan_inf >> done;
    if (!in || index != c || k.trials < 0 || k.incorrect < 0 || k.nan_inf < 0 ||
        k.failures() > k.trials)
      throw UsageError("the checkpoint '" + path + "' is malformed at cell " + std::to_string(c));
    k.done = done != 0;
  }
  return counts;
}

RecomputeTiming time_recompute(RecomputingTarget& target, int component, int injections,
                               uint64_t seed) {
  std::vector<std::vector<ElementFault>> faults;
  const FaultModel flip;
  for (int i = 0; i < injections; ++i) {
    Rng rng(trial_seed(seed, static_cast<uint64_t>(component), static_cast<uint64_t>(i)));
    faults.push_back(
        sample_faults(flip, DType::fp32, BitClass::any, target.elements(component), rng));
  }
  RecomputeTiming r;
  r.injections = injections;
  // Interleaved, so both paths see the same caches and clock.
  using clock = std::chrono::steady_clock;
  for (const auto& f : faults) {
    const auto t0 = clock::now();
    const std::vector<float> partial = target.logits_partial(component, f);
    const auto t1 = clock::now();
    const std::vector<float> full = target.logits_full(component, f);
    const auto t2 = clock::now();
    r.partial_s += std::chrono::duration<double>(t1 - t0).count();
    r.full_s += std::chrono::duration<double>(t2 - t1).count();
    // Bits, not values: NaN == NaN here, and -0 != +0.
    r.mismatches += partial.size() != full.size() ||
                    std::memcmp(full.data(), partial.data(), full.size() * sizeof(float)) != 0;
  }
  return r;
}

}  // namespace paralab::pvf
