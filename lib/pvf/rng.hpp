// rng.hpp: the counter-based random numbers of a fault-injection campaign.
// Trial t of cell c draws from Rng(trial_seed(seed, c, t)), a pure function
// of the three, so any rank can run any trial and any split of the trials
// over ranks draws the same faults.
#pragma once

#include <cstdint>

namespace paralab::pvf {

// Steele, Lea and Flood's splitmix64 finaliser (a bijection on 64 bits).
inline uint64_t splitmix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

inline uint64_t trial_seed(uint64_t campaign_seed, uint64_t cell, uint64_t trial) {
  return splitmix64(splitmix64(splitmix64(campaign_seed) ^ cell) ^ trial);
}

// A splitmix64 stream.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() { return splitmix64(state_++); }
  // Uniform in [0, 1) from 53 bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in [0, n) by the multiply-high map (bias below n / 2^64).
  uint64_t below(uint64_t n) {
    __extension__ using u128 = unsigned __int128;  // GCC and Clang; -Wpedantic knows it not
    return static_cast<uint64_t>((static_cast<u128>(next()) * n) >> 64);
  }

 private:
  uint64_t state_;
};

}  // namespace paralab::pvf
