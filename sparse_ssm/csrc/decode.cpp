// Mamba-1's fused decoding step (chapter 18a): its layer, mamba_step.h compiled once per instruction set, and the
// entry point (decode_driver.h) for this architecture.
#include "common.h"
#include "kernels.h"
#include "decode.h"

// the tensors and sizes of one Mamba-1 residual layer
struct Mamba1Layer {
  float *conv_state, *ssm_state; const float *norm_w, *conv_w, *conv_b, *A_log, *D;
  Lin in_proj, x_proj, dt_proj, out_proj; int64_t d, n, r, k;
};
// its scratch: xz (nb, 2d), u and y (nb, d) shared by the team; xdbl (nb, r + 2n), dt and gate (nb, d) each thread's
struct M1Shared { float *xz, *u, *y;
  static M1Shared at(float* q, int64_t nb, int64_t d) { return {q, q + nb * 2 * d, q + nb * 3 * d}; } };
struct M1Priv { float *xdbl, *dt, *gate;
  static M1Priv at(float* q, int64_t nb, int64_t d, int64_t nx) { return {q, q + nb * nx, q + nb * (nx + d)}; } };

#define ISA_BODY "mamba_step.h"
#include "isa_copies.h"
#include "decode_driver.h"

struct Mamba1 {
  using Layer = Mamba1Layer;
  static constexpr int LT = 7 + 4 * LIN_T, LM = 4 + 4 * LIN_M;   // see `mamba_layer_args` in Python
  // t: conv state, ssm state, norm weight, conv weight, conv bias, A_log, D, then in_proj, x_proj, dt_proj, out_proj
  // m: d_inner, d_state, dt rank, conv width, then the four products' integers
  static Layer read(const at::Tensor* t, const int64_t* m, int64_t nb, int64_t dm) {
    Layer L{}; L.d = m[0]; L.n = m[1]; L.r = m[2]; L.k = m[3];
    TORCH_CHECK(t[0].numel() == nb * L.d * L.k && t[1].numel() == nb * L.d * L.n, "cache states do not match the batch and widths");
    L.conv_state = const_cast<float*>(fptr(t[0], "conv state")); L.ssm_state = const_cast<float*>(fptr(t[1], "ssm state"));
    L.norm_w = fptr(t[2], "norm weight"); L.conv_w = fptr(t[3], "conv weight"); L.conv_b = fptr(t[4], "conv bias");
    L.A_log = fptr(t[5], "A_log"); L.D = fptr(t[6], "D");
    Lin* ls[4] = {&L.in_proj, &L.x_proj, &L.dt_proj, &L.out_proj};
    for (int i = 0; i < 4; ++i) *ls[i] = to_lin(t + 7 + i * LIN_T, m + 4 + i * LIN_M);
    TORCH_CHECK(L.in_proj.in == dm && L.in_proj.out == 2 * L.d && L.x_proj.in == L.d && L.x_proj.out == L.r + 2 * L.n
                && L.dt_proj.in == L.r && L.dt_proj.out == L.d && L.out_proj.in == L.d && L.out_proj.out == dm, "Mamba-1 layer: products of the wrong shape");
    return L;
  }
  static int64_t shared(const Layer& L, int64_t nb) { return nb * 4 * L.d; }
  static int64_t priv(const Layer& L, int64_t nb) { return nb * (L.r + 2 * L.n + 2 * L.d); }
  static std::vector<const Lin*> lins(const Layer& L) { return {&L.in_proj, &L.x_proj, &L.dt_proj, &L.out_proj}; }
  static void run(const Model<Mamba1>& M, float* x, float* logits, float eps, float* priv, int nt) {
    ISA_DISPATCH(model_step(M.layers, x, eps, M.norm_f, M.head, logits, M.head.out, M.w, priv, M.w.per(), nt))
  }
};

at::Tensor mamba_decode(DECODE_ARGS) {
  return decode_entry<Mamba1>(ids, n, emb_t, emb_m, ts, ms, norm_f, head_t, head_m, eps, threads, si, sd, seen);
}
