// S4: the structured state space block of the official S4 (state-spaces/s4
// models/s4/s4.py, SSMKernelDPLR), channel-last (B, L, H) -> (B, L, H):
//
//   y = GLU(Linear_{H->2H}(dropout(GELU(K * u + D u))))
//
// the block of s4d (../s4d/s4_block.hpp, shared) around the S4 kernel K. Per
// channel the state matrix is diagonal plus low rank, A = Lambda - P P*,
// initialised from the normal-plus-low-rank form of HiPPO-LegS (nplr.hpp),
// and the output vector is stored as C~ = C (I - Abar^l_max) (docs/math.md §1).
//
//   --mode dplr (default): the kernel of the full DPLR system.
//       Generalised bilinear schemes (ssm.disc.gbt: bilinear, dirac,
//       backward_euler): the generating function at the roots of unity
//       through the Cauchy kernel and the Woodbury identity (dplr_kernel.hpp).
//       Exponential schemes (ssm.disc.exp: zoh, async; no rational form):
//       exactly, through the dense matrix exponential of each channel's
//       state matrix in float64 and its Frechet derivative (dense.hpp).
//       Any other scheme is refused.
//   --mode diag: the diagonal restriction (S4D-LegS: Lambda alone, no P, C
//       itself), the S4D kernel of ../s4d/s4d_kernel.hpp, any scheme.
//
// Length: C~ is attuned to l_max. A sequence L <= l_max gets the kernel of
// length l_max, truncated; a longer one doubles the length as the official
// code does (C~_{2l} = C~_l (I + Abar^l), until >= L), on the fly, with its
// gradient: the parameter itself stays attuned to l_max (the layer's state
// lives in its parameters). Recurrent mode: x <- Abar x + Bbar u with
// C = C~ (I - Abar^l_max)^{-1} recovered by a solve.
//
// Files: this header (the class), s4.cpp (the CPU implementation and the
// registration of s4 and, built a second time with S4_VARIANT_LR, s4lr), the
// kernels: nplr.hpp (HiPPO-LegS, NPLR), kernel.hpp (the DPLR kernel of both
// families) over dplr_kernel.hpp (Cauchy, Woodbury) and dense.hpp (dense
// exponential, doubling, recovery of C); a CUDA implementation goes into
// s4.cu beside them.
#pragma once

#include <ssm/sdk.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "../s4d/s4_block.hpp"
#include "../s4d/s4d_kernel.hpp"
#include "dense.hpp"
#include "dplr_kernel.hpp"
#include "kernel.hpp"

namespace s4 {

enum class Mode { kDplr, kDiag };

// What backward needs from the most recent training forward.
template <typename T>
struct Cache : s4block::Activations<T> {
  // --mode diag: the S4D modes and powers.
  s4d::Modes modes;
  s4d::Powers powers;
  // --mode dplr: the kernel (with what its backward needs) and a scratch copy.
  DplrKernel kernel;
  std::vector<double> K64;
};

// Recurrent state.
struct State : ssm::LayerState {
  int64_t batch = 0, H = 0;
  bool diag = false;
  // diag: complex modes (batch, H, N2) as s4d.
  int64_t N2 = 0;
  std::vector<cd> h, Abar, Bbar, C;
  // dplr: the real state (batch, H, N), per channel Abar (N, N), Bbar and C (N).
  int64_t N = 0;
  std::vector<double> x;
  std::vector<RMat> Abar_r;
  std::vector<Vec> Bbar_r, C_r;
};

class S4 : public ssm::Layer {
 public:
  static std::vector<ssm::Option> options() { return options_with("legs"); }

  explicit S4(const ssm::Config& cfg);

  std::vector<ssm::ParamSpec> params() override { return specs(); }
  void init_params(ssm::Context& ctx, ssm::Params p) override;
  void forward(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y) override;
  void backward(ssm::Context& ctx, ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp) override;
  std::unique_ptr<ssm::LayerState> state_create(ssm::Context& ctx, ssm::Params p, int64_t batch) override;
  void step(ssm::Context& ctx, ssm::Params p, ssm::LayerState& state, const DLTensor& x, DLTensor& y) override;
  // CUDA (s4.cu, later): has_cuda and the *_cuda overrides go here.

 protected:
  // The options, with `init` defaulting to `default_init`.
  static std::vector<ssm::Option> options_with(const char* default_init);

 private:
  // Parameter indices (P only in dplr mode).
  size_t iLogDt() const { return 0; }
  size_t iARealLog() const { return 1; }
  size_t iAImag() const { return 2; }
  size_t iP() const { return 3; }
  size_t iB() const { return mode_ == Mode::kDplr ? 4 : 3; }
  size_t iC() const { return iB() + 1; }
  size_t iD() const { return iB() + 2; }
  size_t iWOut() const { return iB() + 3; }
  size_t iBOut() const { return iB() + 4; }
  size_t count() const { return iB() + 5; }
  uint64_t dropout_stream() const { return count(); }

  std::vector<ssm::ParamSpec> specs() const;
  template <typename T>
  void init_typed(ssm::Context& ctx, ssm::Params p);
  template <typename T>
  void check_param_shapes(ssm::Params p) const;
  std::pair<int64_t, int64_t> sequence_shape(const DLTensor& t, const char* what) const;
  template <typename T>
  Cache<T>& training_cache();
  template <typename T>
  void forward_typed(ssm::Context& ctx, ssm::Params p, const DLTensor& x, DLTensor& y);
  template <typename T>
  void backward_typed(ssm::Params p, const DLTensor& dy, DLTensor& dx, ssm::Params dp);
  // The kernel K (H, L), without D, into c.K; keeps what its backward needs in c.
  template <typename T>
  void kernel_diag(ssm::Context& ctx, ssm::Params p, Cache<T>& c, int64_t L, bool training);
  template <typename T>
  void kernel_dplr(ssm::Params p, Cache<T>& c, int64_t L, bool training);
  // Given dK (H, L) in c.dK: the kernel's parameter gradients (+=).
  template <typename T>
  void kernel_dplr_backward(Cache<T>& c, ssm::Params dp);
  template <typename T>
  Dplr load_dplr(ssm::Params p) const;
  template <typename T>
  void diag_modes(ssm::Context& ctx, ssm::Params p, s4d::Modes& m, bool derivatives);
  template <typename T>
  void step_typed(ssm::Params p, State& st, const DLTensor& x, DLTensor& y);

  int64_t H_, N_, N2_, R_, l_max_;
  Mode mode_;
  std::string init_, disc_name_;
  double dt_min_, dt_max_, lr_ssm_, dropout_;
  ssm::DiscChild disc_;
  Scheme scheme_;  // dplr: the family of disc_
  RowFft fft_;     // the kernel's FFTs (dplr, generalised bilinear)
  std::variant<std::monostate, Cache<float>, Cache<double>> cache_;
  bool training_ok_ = false;  // cache_ holds a complete training forward
};

// s4lr: S4 with the random DPLR initialisation (the learnable low-rank S4 of
// the FilippoOlivo/SSM seed), a plugin of its own so that `init` defaults to
// random (an alias could not change a default).
class S4LR : public S4 {
 public:
  static std::vector<ssm::Option> options() { return options_with("random"); }
  using S4::S4;
};

}  // namespace s4
