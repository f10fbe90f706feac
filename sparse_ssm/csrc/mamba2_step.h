// One copy of Mamba-2's fused decoding step for the instruction set KERNEL_ISA (chapter 18b): decode2.cpp compiles
// this file three times (isa_copies.h).
#include "lin_step.h"

// x (nb, dm) += mixer(norm(x)) for one Mamba-2 layer, updating its conv and SSM states in place. Thread `tid` of
// `nt` owns heads [h0, h1): their rows of in_proj (z, x and dt), the conv of their x channels, their softplus and
// their scan; it also owns a share [q0, q1) of the 2gn channels of B and C (their in_proj rows and conv), which
// every head of a group reads. The threads meet after the conv (a head needs all of its group's B and C), after
// the scan (the gated norm needs whole groups, out_proj all of y) and after out_proj (the next norm needs all of x).
// Between the last two meetings each thread normalises the whole of y for itself (nb * d_inner values, little
// next to its share of out_proj), so that the norm needs no meeting of its own.
static void layer_step(const Mamba2Layer& Ly, float* x, const Work& wk, float eps, int tid, int nt) {
  const int64_t e = Ly.e, n = Ly.n, ng = Ly.g, p = Ly.p, nh = Ly.h, k = Ly.k, gs = Ly.gs, nb = wk.nb, dm = wk.dm;
  const int64_t gn = ng * n, cd = e + 2 * gn, P = e + cd + nh, r = nh / ng;   // conv channels; in_proj rows; heads a group
  const M2Shared s = M2Shared::at(wk.sh, nb, e, cd, nh); const M2Priv v = M2Priv::at(wk.pv);
  float* xn = wk.xn; float* xpad = wk.xpad;
  const int64_t h0 = nh * tid / nt, h1 = nh * (tid + 1) / nt, q0 = 2 * gn * tid / nt, q1 = 2 * gn * (tid + 1) / nt;
  rmsnorm(x, Ly.norm_w, eps, nb, dm, xn);
  lin(Ly.in_proj, xn, dm, s.zx, P, nb, h0 * p, h1 * p, false, xpad);                  // zxbcdt (nb, P): z of my heads,
  lin(Ly.in_proj, xn, dm, s.zx, P, nb, e + h0 * p, e + h1 * p, false, xpad);          // their x,
  lin(Ly.in_proj, xn, dm, s.zx, P, nb, 2 * e + q0, 2 * e + q1, false, xpad);          // my share of B and C,
  lin(Ly.in_proj, xn, dm, s.zx, P, nb, e + cd + h0, e + cd + h1, false, xpad);        // and my heads' dt
  auto conv = [&](int64_t c) {                                  // conv window shift, causal conv (+ bias) of channel c
    const float* w = Ly.conv_w + c * k;
    for (int64_t b = 0; b < nb; ++b) {
      float* st = Ly.conv_state + (b * cd + c) * k;
      for (int64_t i = 0; i + 1 < k; ++i) st[i] = st[i + 1];
      st[k - 1] = s.zx[b * P + e + c];
      float a = 0.0f;
      for (int64_t i = 0; i < k; ++i) a += st[i] * w[i];
      s.u[b * cd + c] = Ly.conv_b ? a + Ly.conv_b[c] : a;
    }
  };
  for (int64_t c = h0 * p; c < h1 * p; ++c) conv(c);
  for (int64_t c = e + q0; c < e + q1; ++c) conv(c);
  for (int64_t b = 0; b < nb; ++b) {                            // SiLU of my channels, softplus of my heads' dt
    float* u = s.u + b * cd; float* dt = s.dt + b * nh; const float* dr = s.zx + b * P + e + cd;
#pragma omp simd
    for (int64_t c = h0 * p; c < h1 * p; ++c) u[c] *= vsigmoid(u[c]);
#pragma omp simd
    for (int64_t c = e + q0; c < e + q1; ++c) u[c] *= vsigmoid(u[c]);
    for (int64_t hh = h0; hh < h1; ++hh) dt[hh] = vsoftplus(dr[hh] + Ly.dt_bias[hh]);
  }
#pragma omp barrier
  for (int64_t hh = h0; hh < h1; ++hh) {                        // the state update of my heads, D, the gate silu(z)
    const int64_t gi = hh / r; const float A = -vexp(Ly.A_log[hh]), Dh = Ly.D[hh];
    for (int64_t b = 0; b < nb; ++b) {
      const float dt = s.dt[b * nh + hh], dA = vexp(dt * A);
      const float* xs = s.u + b * cd + hh * p; const float* B = s.u + b * cd + e + gi * n; const float* C = B + gn;
      const float* z = s.zx + b * P + hh * p; float* y = s.y + b * e + hh * p;
      float* H = Ly.ssm_state + ((b * nh + hh) * p) * n;        // (p, n) of this head and row
      for (int64_t i = 0; i < p; ++i, H += n) {
        const float du = dt * xs[i]; float acc = 0.0f;
#pragma omp simd reduction(+:acc)
        for (int64_t j = 0; j < n; ++j) { const float hv = dA * H[j] + du * B[j]; H[j] = hv; acc += hv * C[j]; }
        y[i] = (acc + Dh * xs[i]) * (z[i] * vsigmoid(z[i]));
      }
    }
  }
#pragma omp barrier
  for (int64_t b = 0; b < nb; ++b)                              // the gated RMSNorm, over groups of gs channels
    for (int64_t c0 = 0; c0 < e; c0 += gs) {
      const float* y = s.y + b * e + c0; float* o = v.yn + b * e + c0; const float* w = Ly.gnorm_w + c0; float ss = 0.0f;
#pragma omp simd reduction(+:ss)
      for (int64_t i = 0; i < gs; ++i) ss += y[i] * y[i];
      const float inv = 1.0f / std::sqrt(ss / gs + eps);
#pragma omp simd
      for (int64_t i = 0; i < gs; ++i) o[i] = y[i] * inv * w[i];
    }
  lin(Ly.out_proj, v.yn, e, x, dm, nb, dm * tid / nt, dm * (tid + 1) / nt, true, xpad);   // the residual: x += out_proj(yn)
#pragma omp barrier
}

#include "model_step.h"
