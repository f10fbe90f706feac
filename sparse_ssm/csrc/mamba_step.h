// One copy of Mamba-1's fused decoding step for the instruction set KERNEL_ISA (chapter 18a): decode.cpp compiles
// this file three times (isa_copies.h).
#include "lin_step.h"

// x (nb, dm) += mixer(norm(x)) for one layer, updating its conv and SSM states in place. Thread `tid` of
// `nt` owns channels [c0, c1): it computes their rows of in_proj (x and z halves), conv, dt_proj and
// scan, so these need no barrier between them; x_proj (a few dozen rows) is computed by every thread
// on its own; threads meet after the conv (x_proj needs every channel), after the scan (out_proj
// needs every channel) and after out_proj (the next norm needs all of x).
static void layer_step(const Mamba1Layer& Ly, float* x, const Work& wk, float eps, int tid, int nt) {
  const int64_t d = Ly.d, n = Ly.n, r = Ly.r, k = Ly.k, nx = r + 2 * n, nb = wk.nb, dm = wk.dm;
  const M1Shared s = M1Shared::at(wk.sh, nb, d); const M1Priv p = M1Priv::at(wk.pv, nb, d, nx);
  float* xn = wk.xn; float* xpad = wk.xpad;
  const int64_t c0 = d * tid / nt, c1 = d * (tid + 1) / nt;
  rmsnorm(x, Ly.norm_w, eps, nb, dm, xn);
  lin(Ly.in_proj, xn, dm, s.xz, 2 * d, nb, c0, c1, false, xpad);          // xz (nb, 2d): x half ...
  lin(Ly.in_proj, xn, dm, s.xz, 2 * d, nb, d + c0, d + c1, false, xpad);  // ... and z half
  for (int64_t c = c0; c < c1; ++c)                                          // conv window shift, causal conv, SiLU
    for (int64_t b = 0; b < nb; ++b) {
      float* st = Ly.conv_state + (b * d + c) * k; const float* w = Ly.conv_w + c * k;
      for (int64_t i = 0; i + 1 < k; ++i) st[i] = st[i + 1];
      st[k - 1] = s.xz[b * 2 * d + c];
      float a = Ly.conv_b ? Ly.conv_b[c] : 0.0f;
      for (int64_t i = 0; i < k; ++i) a += w[i] * st[i];
      s.u[b * d + c] = a;
    }
  for (int64_t b = 0; b < nb; ++b) {                                         // SiLU, vectorised over channels
    float* u = s.u + b * d;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) u[c] *= vsigmoid(u[c]);
  }
#pragma omp barrier
  lin(Ly.x_proj, s.u, d, p.xdbl, nx, nb, 0, nx, false, xpad);              // xdbl (nb, r + 2n): dt rank, B, C
  lin(Ly.dt_proj, p.xdbl, nx, p.dt, d, nb, c0, c1, false, xpad);           // dt before softplus, bias included
  for (int64_t b = 0; b < nb; ++b) {                                         // softplus and the gate silu(z), vectorised
    float* dt = p.dt + b * d; float* g = p.gate + b * d; const float* z = s.xz + b * 2 * d + d;
#pragma omp simd
    for (int64_t c = c0; c < c1; ++c) { dt[c] = vsoftplus(dt[c]); g[c] = z[c] * vsigmoid(z[c]); }
  }
  for (int64_t c = c0; c < c1; ++c) {                                        // the state update, D and the gate
    const float* al = Ly.A_log + c * n;
    for (int64_t b = 0; b < nb; ++b) {
      const float dt = p.dt[b * d + c], u = s.u[b * d + c], du = dt * u;
      const float* B = p.xdbl + b * nx + r; const float* C = B + n;
      float* h = Ly.ssm_state + (b * d + c) * n; float acc[16] = {};
      for (int64_t j = 0; j < n; j += 16) {                                  // sixteen states a vector
        if (j + 16 <= n) {
#pragma omp simd
          for (int l = 0; l < 16; ++l) {
            const float hv = vexp(-dt * vexp(al[j + l])) * h[j + l] + du * B[j + l];
            h[j + l] = hv; acc[l] += C[j + l] * hv;
          }
        } else {                                                             // the last few, under a mask
          const int64_t m = n - j;
#pragma omp simd
          for (int l = 0; l < 16; ++l) {
            const bool in = l < m;
            const float a = in ? al[j + l] : 0.0f, hh = in ? h[j + l] : 0.0f, bb = in ? B[j + l] : 0.0f, cc = in ? C[j + l] : 0.0f;
            const float hv = vexp(-dt * vexp(a)) * hh + du * bb;
            if (in) h[j + l] = hv;
            acc[l] += cc * hv;
          }
        }
      }
      s.y[b * d + c] = (hsum16(acc) + Ly.D[c] * u) * p.gate[b * d + c];
    }
  }
#pragma omp barrier
  lin(Ly.out_proj, s.y, d, x, dm, nb, dm * tid / nt, dm * (tid + 1) / nt, true, xpad);   // the residual: x += out_proj(y)
#pragma omp barrier
}

#include "model_step.h"
