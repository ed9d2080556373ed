// choose.hpp: pass-KV or pass-Q for one request (Yang et al., MLSys'25,
// section 3: "Ring Pass-KV vs Ring Pass-Q"), from the hardware's attention
// rate C (FLOP/s) and ring bandwidth BW (bytes/s).
//
// Per ring step a rank attends T/N queries to (T+P)/N keys, 4 D N_H FLOPs a
// pair (the paper's estimate, masks ignored), while it forwards either its
// K/V block, 2 (T+P)/N N_KV D e bytes, or its Q block, T/N N_H D e bytes
// (e bytes an element). The paper's rule picks pass-KV when
//   (1) T >= N C N_KV e / (2 N_H BW): the K/V transfer hides behind the
//       step's attention, or
//   (2) T / (T+P) >= 2 N_KV / N_H: the K/V message is no larger than Q's,
// and pass-Q otherwise. Refinement for pass-Q's All2All (which returns the
// partial outputs, T/N N_H rows of D values in the partial type and an FP32
// LSE per rank, (N-1)/N of them over the link: the bytes the simulator sends): when the rule says
// pass-Q, compare what each leaves exposed,
//   pass-KV: (N-1) max(0, t_kv - t_attn)
//   pass-Q:  (N-1) max(0, t_q - t_attn) + t_all2all,
// and keep pass-KV when it exposes no more. Our reading of the paper's
// refinement, written in the same quantities; it changes the choice only when
// the All2All outweighs the ring traffic pass-Q saves.
#pragma once

#include <string>

#include "ring/ring_attention.hpp"

namespace paralab::ring {

struct ChoiceInputs {
  int ranks = 1;                     // N
  double T = 0, P = 0;               // new and cached tokens
  int H = 1, H_kv = 1, D = 1;        // N_H, N_KV, head dimension
  double element_bytes = 2;          // e
  double flops_per_s = 0;            // C: attention rate of one rank
  double bytes_per_s = 0;            // BW: ring bandwidth of one rank, one direction
  double partial_element_bytes = 4;  // pass-Q's returned O (its LSE is FP32)
};

struct AlgorithmChoice {
  Algorithm algorithm = Algorithm::pass_kv;
  std::string reason;            // which condition decided, with its numbers
  double t_threshold = 0;        // (1)'s right-hand side, tokens
  double miss_rate = 0;          // T / (T+P)
  double miss_threshold = 0;     // (2)'s right-hand side
  double exposed_pass_kv_s = 0;  // the refinement's estimates
  double exposed_pass_q_s = 0;
};

// Throws std::invalid_argument for non-positive rates, sizes or ranks.
AlgorithmChoice choose_algorithm(const ChoiceInputs& in);

}  // namespace paralab::ring
