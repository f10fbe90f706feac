// Mamba-3's fused decoding step (chapter 18c): its layer, mamba3_step.h compiled once per instruction set, and the
// entry point (decode_driver.h) for this architecture.
#include "common.h"
#include "kernels.h"
#include "decode.h"

// the tensors and sizes of one Mamba-3 residual layer
struct Mamba3Layer {
  float *angle_state, *ssm_state, *k_state, *v_state;   // (nb, h, m), (nb, h, p, n), (nb, r, h, n), (nb, h, p)
  const float *norm_w, *dt_bias, *B_bias, *C_bias, *B_norm, *C_norm, *D;   // (dm), (h), (h, r, n) twice, (n) twice, (h)
  const float *mimo_x, *mimo_z, *mimo_o, *out_norm;    // (h, r, p) each when MIMO, (d_inner) when out-proj norm; else null
  float A_floor, eps_B, eps_C, eps_out;
  Lin in_proj, out_proj; int64_t d, n, p, h, g, r, m; bool mimo, onorm;
  int64_t width() const { return 2 * d + 2 * r * g * n + 3 * h + m; }   // in_proj's rows: z, x, B, C, dt, A, trap, angles
};
// its scratch: the in_proj output zx (nb, width) and the gated output y (nb, d), shared by the team; each thread's own
// rotated B and C of one head (r, n) each, its inputs, previous inputs and outputs (r, p) each, and the cosines
// and sines of its angles (m) each
struct M3Shared { float *zx, *y;
  static M3Shared at(float* q, int64_t nb, int64_t w) { return {q, q + nb * w}; } };
struct M3Priv { float *k, *q, *v, *vp, *y, *c, *s;
  static M3Priv at(float* t, int64_t r, int64_t n, int64_t p, int64_t m) {
    float* u = t + 2 * r * n;
    return {t, t + r * n, u, u + r * p, u + 2 * r * p, u + 3 * r * p, u + 3 * r * p + m};
  } };

#define ISA_BODY "mamba3_step.h"
#include "isa_copies.h"
#include "decode_driver.h"

struct Mamba3 {
  using Layer = Mamba3Layer;
  static constexpr int LT = 16 + 2 * LIN_T, LM = 9 + 2 * LIN_M;   // see `mamba3_layer_args` in Python
  // t: angle, ssm, k and v states, norm weight, dt_bias, B_bias, C_bias, B_norm, C_norm, D, mimo_x, mimo_z, mimo_o,
  //    the out-proj norm's weight, the scalars (A_floor, three eps), then in_proj, out_proj
  // m: d_inner, d_state, headdim, nheads, ngroups, rank, rotary angles, MIMO, out-proj norm, then the products' integers
  static Layer read(const at::Tensor* t, const int64_t* m, int64_t nb, int64_t dm) {
    Layer L{}; L.d = m[0]; L.n = m[1]; L.p = m[2]; L.h = m[3]; L.g = m[4]; L.r = m[5]; L.m = m[6]; L.mimo = m[7]; L.onorm = m[8];
    TORCH_CHECK(L.h * L.p == L.d && L.g >= 1 && L.h % L.g == 0 && L.n % 2 == 0 && L.m >= 0 && 2 * L.m <= L.n && L.r >= 1
                && (L.mimo || L.r == 1), "Mamba-3 layer: inconsistent sizes");
    TORCH_CHECK(t[0].numel() == nb * L.h * L.m && t[1].numel() == nb * L.h * L.p * L.n && t[2].numel() == nb * L.r * L.h * L.n
                && t[3].numel() == nb * L.h * L.p, "cache states do not match the batch and widths");
    float** st[4] = {&L.angle_state, &L.ssm_state, &L.k_state, &L.v_state};
    for (int i = 0; i < 4; ++i) *st[i] = const_cast<float*>(fptr(t[i], "a cache state"));
    L.norm_w = fptr(t[4], "norm weight"); L.dt_bias = fptr(t[5], "dt_bias"); L.B_bias = fptr(t[6], "B_bias");
    L.C_bias = fptr(t[7], "C_bias"); L.B_norm = fptr(t[8], "B_norm"); L.C_norm = fptr(t[9], "C_norm"); L.D = fptr(t[10], "D");
    L.mimo_x = fptr(t[11], "mimo_x"); L.mimo_z = fptr(t[12], "mimo_z"); L.mimo_o = fptr(t[13], "mimo_o"); L.out_norm = fptr(t[14], "norm");
    TORCH_CHECK(t[4].numel() == dm && t[5].numel() == L.h && t[6].numel() == L.h * L.r * L.n && t[7].numel() == L.h * L.r * L.n
                && t[8].numel() == L.n && t[9].numel() == L.n && t[10].numel() == L.h, "Mamba-3 layer: parameters of the wrong size");
    TORCH_CHECK(!L.mimo || (t[11].numel() == L.h * L.r * L.p && t[12].numel() == L.h * L.r * L.p && t[13].numel() == L.h * L.r * L.p),
                "Mamba-3 layer: MIMO parameters of the wrong size");
    TORCH_CHECK(!L.onorm || t[14].numel() == L.d, "Mamba-3 layer: out-proj norm weight of the wrong size");
    const float* sc = fptr(t[15], "scalars"); TORCH_CHECK(t[15].numel() == 4, "Mamba-3 layer: four scalars expected");
    L.A_floor = sc[0]; L.eps_B = sc[1]; L.eps_C = sc[2]; L.eps_out = sc[3];
    L.in_proj = to_lin(t + 16, m + 9); L.out_proj = to_lin(t + 16 + LIN_T, m + 9 + LIN_M);
    TORCH_CHECK(L.in_proj.in == dm && L.in_proj.out == L.width() && L.out_proj.in == L.d && L.out_proj.out == dm,
                "Mamba-3 layer: products of the wrong shape");
    return L;
  }
  static int64_t shared(const Layer& L, int64_t nb) { return nb * (L.width() + L.d); }
  static int64_t priv(const Layer& L, int64_t) { return 2 * L.r * L.n + 3 * L.r * L.p + 2 * L.m; }
  static std::vector<const Lin*> lins(const Layer& L) { return {&L.in_proj, &L.out_proj}; }
  static void run(const Model<Mamba3>& M, float* x, float* logits, float eps, float* priv, int nt) {
    ISA_DISPATCH(model_step(M.layers, x, eps, M.norm_f, M.head, logits, M.head.out, M.w, priv, M.w.per(), nt))
  }
};

at::Tensor mamba3_decode(DECODE_ARGS) {
  return decode_entry<Mamba3>(ids, n, emb_t, emb_m, ts, ms, norm_f, head_t, head_m, eps, threads, si, sd, seen);
}
