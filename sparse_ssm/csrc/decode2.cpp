// Mamba-2's fused decoding step (chapter 18b): its layer, mamba2_step.h compiled once per instruction set, and the
// entry point (decode_driver.h) for this architecture.
#include "common.h"
#include "kernels.h"
#include "decode.h"

// the tensors and sizes of one Mamba-2 residual layer: d_inner e = h * p, state n, g groups of B and C, p channels a
// head, h heads, conv width k, gated-norm groups of gs channels
struct Mamba2Layer {
  float *conv_state, *ssm_state; const float *norm_w, *conv_w, *conv_b, *dt_bias, *A_log, *D, *gnorm_w;
  Lin in_proj, out_proj; int64_t e, n, g, p, h, k, gs;
};
// its scratch: zxbcdt (nb, 2e + 2gn + h), the conv's output u (nb, e + 2gn), dt (nb, h) and the gated y (nb, e)
// shared by the team; the normalised y (nb, e) each thread's
struct M2Shared { float *zx, *u, *dt, *y;
  static M2Shared at(float* q, int64_t nb, int64_t e, int64_t cd, int64_t h) {
    float* u = q + nb * (e + cd + h); float* dt = u + nb * cd; return {q, u, dt, dt + nb * h}; } };
struct M2Priv { float* yn; static M2Priv at(float* q) { return {q}; } };

#define ISA_BODY "mamba2_step.h"
#include "isa_copies.h"
#include "decode_driver.h"

struct Mamba2 {
  using Layer = Mamba2Layer;
  static constexpr int LT = 9 + 2 * LIN_T, LM = 7 + 2 * LIN_M;   // see `mamba2_layer_args` in Python
  // t: conv state, ssm state, norm weight, conv weight, conv bias, dt_bias, A_log, D, gated-norm weight, then in_proj, out_proj
  // m: d_inner, d_state, n_groups, head_dim, nheads, conv width, norm group size, then the two products' integers
  static Layer read(const at::Tensor* t, const int64_t* m, int64_t nb, int64_t dm) {
    Layer L{}; L.e = m[0]; L.n = m[1]; L.g = m[2]; L.p = m[3]; L.h = m[4]; L.k = m[5]; L.gs = m[6];
    TORCH_CHECK(L.e >= 1 && L.n >= 1 && L.g >= 1 && L.p >= 1 && L.h >= 1 && L.k >= 1 && L.gs >= 1 && L.e == L.h * L.p
                && L.h % L.g == 0 && L.e % L.gs == 0, "Mamba-2 layer: inconsistent widths");
    const int64_t cd = L.e + 2 * L.g * L.n;
    TORCH_CHECK(t[0].numel() == nb * cd * L.k && t[1].numel() == nb * L.h * L.p * L.n, "cache states do not match the batch and widths");
    L.conv_state = const_cast<float*>(fptr(t[0], "conv state")); L.ssm_state = const_cast<float*>(fptr(t[1], "ssm state"));
    L.norm_w = fptr(t[2], "norm weight"); L.conv_w = fptr(t[3], "conv weight"); L.conv_b = fptr(t[4], "conv bias");
    L.dt_bias = fptr(t[5], "dt_bias"); L.A_log = fptr(t[6], "A_log"); L.D = fptr(t[7], "D"); L.gnorm_w = fptr(t[8], "gated norm weight");
    TORCH_CHECK(t[2].numel() == dm && t[3].numel() == cd * L.k && (t[4].numel() == 0 || t[4].numel() == cd) && t[5].numel() == L.h
                && t[6].numel() == L.h && t[7].numel() == L.h && t[8].numel() == L.e, "Mamba-2 layer: a parameter of the wrong size");
    L.in_proj = to_lin(t + 9, m + 7); L.out_proj = to_lin(t + 9 + LIN_T, m + 7 + LIN_M);
    TORCH_CHECK(L.in_proj.in == dm && L.in_proj.out == L.e + cd + L.h && L.out_proj.in == L.e && L.out_proj.out == dm,
                "Mamba-2 layer: products of the wrong shape");
    return L;
  }
  static int64_t shared(const Layer& L, int64_t nb) { return nb * (4 * L.e + 4 * L.g * L.n + 2 * L.h); }   // M2Shared
  static int64_t priv(const Layer& L, int64_t nb) { return nb * L.e; }
  static std::vector<const Lin*> lins(const Layer& L) { return {&L.in_proj, &L.out_proj}; }
  static void run(const Model<Mamba2>& M, float* x, float* logits, float eps, float* priv, int nt) {
    ISA_DISPATCH(model_step(M.layers, x, eps, M.norm_f, M.head, logits, M.head.out, M.w, priv, M.w.per(), nt))
  }
};

at::Tensor mamba2_decode(DECODE_ARGS) {
  return decode_entry<Mamba2>(ids, n, emb_t, emb_m, ts, ms, norm_f, head_t, head_m, eps, threads, si, sd, seen);
}
