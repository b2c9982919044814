// S6: the selective state space layer of Mamba (Gu & Dao 2023, Algorithm 2;
// state-spaces/mamba mamba_simple.py and selective_scan_interface.py),
// channel-last (B, L, D) -> (B, L, D), D = d_model:
//
//   [dt_low | Bm | Cm] = x_proj(u)                  (R + 2N outputs, no bias)
//   delta = softplus(dt_proj(dt_low))               (D outputs, bias = dt bias)
//   A = -exp(A_log)                                 (D, N), A_log = log(1..N)
//   h_t = a(delta_t A) h_{t-1} + delta_t beta(delta_t A) Bm_t u_t      per (d, n)
//   s_t = Cm_t . h_t + D u_t
//
// a, beta: the discretization, a child plugin (--disc). The default, s6disc,
// is Mamba's own (a = e^z, beta = 1: Abar = exp(delta A), Bbar = delta B) and
// runs on a vectorised fast path; any other scheme (zoh, bilinear, dirac,
// backward_euler, async, a third party's) runs through the plugin's map,
// evaluated per chunk of the scan (selective_scan.hpp).
//
// The block around it (option `block`):
//   linear (default, the layer used alone):  y = Linear_{D->D}(GELU(s))
//     the S4 block of the s4/s4d layers with its gate (GLU) removed, i.e. the
//     "no gate" architecture of the Mamba paper's Table 1 and the S6 model of
//     the FilippoOlivo seed (S6 block, activation, Linear); the host adds the
//     residual connection and the norm around it.
//   none: y = s, the bare selective SSM, as Mamba's block uses it inside
//     (the mamba layer creates its inner s6 with block=none; Mamba applies
//     its own gate y * SiLU(z) and out_proj).
//
// Memory: what backward keeps is O(B L D): u, dt_proj's output, (dt_low, Bm, Cm), the
// block's activations and the states at the chunk starts,
// (B, ceil(L/chunk), D, N); never a (B, L, D, N) tensor.
//
// Recurrent mode: the same forward on one token with the state (B, D, N)
// carried between calls.
#pragma once

#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "selective_scan.hpp"

namespace s6 {

// Parameter order (param_describe, params, dparams). kOutW and kOutB exist
// only with block=linear.
enum Param : size_t { kXProj, kDtW, kDtB, kALog, kD, kOutW, kOutB };

// What backward needs from the most recent training forward.
template <typename T>
struct Cache {
  int64_t B = 0, L = 0;
  Buf<T> u;       // the input (B, L, D)
  Buf<T> dtl;     // dt_low (B, L, R)
  Buf<T> Bm, Cm;  // (B, L, N) each
  Buf<T> pre;     // dt_proj(dt_low) + dt bias (B, L, D): delta = softplus(pre)
  Buf<T> bounds;  // the scan's chunk-start states (B, n_chunks, D, N)
  Buf<T> act;     // block=linear: GELU(s) (B, L, D)
  Buf<T> dact;    // block=linear: GELU'(s) (B, L, D)
  Buf<T> A;       // -exp(A_log) (D, N)
};

// Recurrent state: the scan's h (batch, D, N) in the dtype of the calls.
struct State : ssm::LayerState {
  int64_t batch = 0;
  std::vector<float> hf;
  std::vector<double> hd;
};

class S6 : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() {
    return {
        ssm::Option::integer("d_model", "64", "channels D (Mamba: d_inner = expand * d_model, set by the mamba layer)"),
        ssm::Option::integer("d_state", "16", "state size N per channel"),
        ssm::Option::integer("dt_rank", "0", "rank R of the dt projection; 0: ceil(d_model / 16)"),
        ssm::Option::real("dt_min", "0.001", "smallest initial dt (log-uniform in [dt_min, dt_max])"),
        ssm::Option::real("dt_max", "0.1", "largest initial dt"),
        ssm::Option::real("dt_floor", "0.0001", "initial dt is clamped to at least this before the inverse softplus"),
        ssm::Option::integer("chunk", "64", "scan chunk along L: backward recomputes states from chunk starts"),
        ssm::Option::disc("disc", "s6disc", "discretization plugin: s6disc (Mamba's: exp for A, Euler for B), zoh, ..."),
        ssm::Option::string("block", "linear",
                            "around the SSM: linear (GELU then Linear D->D, no gate; the layer alone) or none (the "
                            "bare selective SSM, as inside mamba)"),
        ssm::Option::real("lr_ssm", "0", "learning-rate cap of A_log and the dt projection; 0: none (Mamba)"),
    };
  }

  explicit S6(const ssm::Config& cfg);

  std::vector<ssm::ParamSpec> params() override { return specs(); }
  void init_params(ssm::Context& ctx, ssm::Params p) override;
  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override;
  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override;
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override;
  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) override;

 private:
  std::vector<ssm::ParamSpec> specs() const;
  size_t param_count() const { return block_ ? 7 : 5; }
  template <typename T>
  void init_typed(ssm::Context& ctx, ssm::Params p);
  template <typename T>
  void check_param_shapes(ssm::Params p) const;
  template <typename T>
  Scheme<T> scheme(ssm::Context& ctx) const;
  template <typename T>
  Cache<T>& training_cache();
  // Forward on (B, L, D); state (B, D, N) in/out when not nullptr (the
  // recurrent mode: L = 1, never training).
  template <typename T>
  void forward_impl(ssm::Context& ctx, ssm::Params p, const T* x, T* y, int64_t B, int64_t L, T* state);
  template <typename T>
  void backward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp);

  int64_t D_, N_, R_, chunk_;
  double dt_min_, dt_max_, dt_floor_, lr_ssm_;
  bool block_;  // block=linear
  ssm::DiscChild disc_;
  bool fast_;   // the scheme is Mamba's (exp-Euler extension): the scan's own path
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;
};

}  // namespace s6
