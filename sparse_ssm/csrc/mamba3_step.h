// One copy of Mamba-3's fused decoding step for the instruction set KERNEL_ISA (chapter 18c): decode3.cpp compiles
// this file three times (isa_copies.h).
#include "lin_step.h"

// out = RMSNorm(raw) * w + bias over n entries, then pairs rotated by the angles with cosines c and sines s: pairs
// (2j, 2j+1), or (j, j + n/2) when `halves` (MIMO); pairs j >= m are not rotated
static inline void norm_rotate(const float* raw, const float* w, const float* bias, float eps, int64_t n,
                               const float* c, const float* s, int64_t m, bool halves, float* out) {
  float ss = 0;
#pragma omp simd reduction(+:ss)
  for (int64_t j = 0; j < n; ++j) ss += raw[j] * raw[j];
  const float inv = 1.0f / std::sqrt(ss / n + eps);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) out[j] = w[j] * (raw[j] * inv) + bias[j];
  for (int64_t j = 0; j < m; ++j) {
    const int64_t i0 = halves ? j : 2 * j, i1 = halves ? j + n / 2 : 2 * j + 1;
    const float x0 = out[i0], x1 = out[i1];
    out[i0] = x0 * c[j] - x1 * s[j]; out[i1] = x0 * s[j] + x1 * c[j];
  }
}

// the head's angles advanced by tanh(theta) * pi * dt: cosines and sines into c, s; stored back mod 2 pi
static inline void advance_angles(float* ang, const float* theta, float dt, int64_t m, float* c, float* s) {
  const float pi = 3.14159265358979323846f, two_pi = 6.28318530717958647692f;
  for (int64_t j = 0; j < m; ++j) {
    const float phi = ang[j] + std::tanh(theta[j]) * pi * dt;
    c[j] = std::cos(phi); s[j] = std::sin(phi);
    float w = std::fmod(phi, two_pi);
    ang[j] = w < 0.0f ? w + two_pi : w;
  }
}

// H (p, n) <- alpha H + beta sum_r vp_r (x) kp_r + gamma sum_r v_r (x) k_r; y_r = H q_r, for one head of rank R
static inline void trap_update(float* Hs, int64_t P, int64_t n, int64_t R, float alpha, float beta, float gamma,
                               const float* kp, int64_t ldkp, const float* k, const float* q,
                               const float* vp, const float* v, float* y) {
  for (int64_t i = 0; i < P; ++i) {
    float* h = Hs + i * n;
    if (R == 1) {                                         // SISO: one pass over the row
      const float bv = beta * vp[i], gv = gamma * v[i]; float acc = 0;
#pragma omp simd reduction(+:acc)
      for (int64_t j = 0; j < n; ++j) { const float hv = alpha * h[j] + bv * kp[j] + gv * k[j]; h[j] = hv; acc += hv * q[j]; }
      y[i] = acc;
      continue;
    }
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) h[j] *= alpha;
    for (int64_t r = 0; r < R; ++r) {                     // the rank-R updates, the row stays in L1
      const float bv = beta * vp[r * P + i], gv = gamma * v[r * P + i]; const float* kpr = kp + r * ldkp; const float* kr = k + r * n;
#pragma omp simd
      for (int64_t j = 0; j < n; ++j) h[j] += bv * kpr[j] + gv * kr[j];
    }
    for (int64_t r = 0; r < R; ++r) {
      const float* qr = q + r * n; float acc = 0;
#pragma omp simd reduction(+:acc)
      for (int64_t j = 0; j < n; ++j) acc += h[j] * qr[j];
      y[r * P + i] = acc;
    }
  }
}

// y_r += D v_r, then the gate silu(z_r) (z_r = z * mimo_z_r when MIMO), or the per-head RMSNorm then the gate; the
// head's output (p) is y_0, or sum_r y_r * mimo_o_r when MIMO
static inline void gate_out(const Mamba3Layer& Ly, int64_t hh, float* y, const float* v, const float* z, float* out) {
  const int64_t P = Ly.p, R = Ly.r; const float D = Ly.D[hh];
  for (int64_t r = 0; r < R; ++r) {
    float* yr = y + r * P; const float* vr = v + r * P;
    const float* mz = Ly.mimo ? Ly.mimo_z + (hh * R + r) * P : nullptr;
    float inv = 1.0f;
    if (Ly.onorm) {
      float ss = 0;
#pragma omp simd reduction(+:ss)
      for (int64_t i = 0; i < P; ++i) { yr[i] += D * vr[i]; ss += yr[i] * yr[i]; }
      inv = 1.0f / std::sqrt(ss / P + Ly.eps_out);
    } else {
#pragma omp simd
      for (int64_t i = 0; i < P; ++i) yr[i] += D * vr[i];
    }
    const float* w = Ly.onorm ? Ly.out_norm + hh * P : nullptr;
#pragma omp simd
    for (int64_t i = 0; i < P; ++i) {
      const float zr = mz ? z[i] * mz[i] : z[i], g = zr * vsigmoid(zr);
      yr[i] = w ? yr[i] * inv * w[i] * g : yr[i] * g;
    }
  }
  if (!Ly.mimo) { std::copy(y, y + P, out); return; }
  std::fill(out, out + P, 0.0f);
  for (int64_t r = 0; r < R; ++r) {
    const float* mo = Ly.mimo_o + (hh * R + r) * P; const float* yr = y + r * P;
#pragma omp simd
    for (int64_t i = 0; i < P; ++i) out[i] += yr[i] * mo[i];
  }
}

// one head hh of batch row b: its step sizes and angles, normed and rotated B and C, the trapezoid update, the
// output and the gate into y (its p channels); the cache's states of this head updated in place
static void head_step(const Mamba3Layer& Ly, int64_t b, int64_t hh, const float* zx, float* yout, const M3Priv& pv) {
  const int64_t d = Ly.d, n = Ly.n, P = Ly.p, H = Ly.h, G = Ly.g, R = Ly.r, M = Ly.m;
  const int64_t oB = 2 * d, oC = oB + R * G * n, oT = oC + R * G * n, grp = hh / (H / G);
  const float dt = vsoftplus(zx[oT + hh] + Ly.dt_bias[hh]), a = zx[oT + H + hh];
  const float adt = -std::max(std::max(a, 0.0f) + 1.0f / (1.0f - std::min(a, 0.0f)), Ly.A_floor) * dt;   // heavy tail, floor
  const float lam = vsigmoid(zx[oT + 2 * H + hh]), alpha = vexp(adt), beta = (1.0f - lam) * dt * alpha, gamma = lam * dt;
  advance_angles(Ly.angle_state + (b * H + hh) * M, zx + oT + 3 * H, dt, M, pv.c, pv.s);
  for (int64_t r = 0; r < R; ++r) {
    const int64_t src = (r * G + grp) * n, par = (hh * R + r) * n;
    norm_rotate(zx + oB + src, Ly.B_norm, Ly.B_bias + par, Ly.eps_B, n, pv.c, pv.s, M, Ly.mimo, pv.k + r * n);
    norm_rotate(zx + oC + src, Ly.C_norm, Ly.C_bias + par, Ly.eps_C, n, pv.c, pv.s, M, Ly.mimo, pv.q + r * n);
  }
  const float* xh = zx + d + hh * P; float* xprev = Ly.v_state + (b * H + hh) * P;
  for (int64_t r = 0; r < R; ++r) {                       // the inputs of each rank: x (times mimo_x when MIMO), now and before
    const float* mx = Ly.mimo ? Ly.mimo_x + (hh * R + r) * P : nullptr;
    for (int64_t i = 0; i < P; ++i) { pv.v[r * P + i] = mx ? xh[i] * mx[i] : xh[i]; pv.vp[r * P + i] = mx ? xprev[i] * mx[i] : xprev[i]; }
  }
  float* kst = Ly.k_state + (b * R * H + hh) * n;         // (r, h, n) of row b: rank r at kst + r * H * n
  trap_update(Ly.ssm_state + (b * H + hh) * P * n, P, n, R, alpha, beta, gamma, kst, H * n, pv.k, pv.q, pv.vp, pv.v, pv.y);
  gate_out(Ly, hh, pv.y, pv.v, zx + hh * P, yout + hh * P);
  for (int64_t r = 0; r < R; ++r) std::copy(pv.k + r * n, pv.k + (r + 1) * n, kst + r * H * n);
  std::copy(xh, xh + P, xprev);
}

// x (nb, dm) += mixer(norm(x)) for one layer, updating its four states in place. The rows of in_proj are shared out
// in blocks of 16; the threads meet (every head needs the B, C and angles of its group), then thread `tid` of `nt`
// owns heads [h0, h1) through the scan and the gate; they meet again before out_proj (which needs every head's
// output, its rows shared out) and after it (the next norm needs all of x).
static void layer_step(const Mamba3Layer& Ly, float* x, const Work& wk, float eps, int tid, int nt) {
  const int64_t W = Ly.width(), nb = wk.nb, dm = wk.dm, d = Ly.d;
  const M3Shared s = M3Shared::at(wk.sh, nb, W); const M3Priv pv = M3Priv::at(wk.pv, Ly.r, Ly.n, Ly.p, Ly.m);
  rmsnorm(x, Ly.norm_w, eps, nb, dm, wk.xn);
  const int64_t blocks = (W + 15) / 16, k0 = blocks * tid / nt, k1 = blocks * (tid + 1) / nt;
  lin(Ly.in_proj, wk.xn, dm, s.zx, W, nb, k0 * 16, std::min(W, k1 * 16), false, wk.xpad);   // zx (nb, W)
#pragma omp barrier
  const int64_t h0 = Ly.h * tid / nt, h1 = Ly.h * (tid + 1) / nt;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t hh = h0; hh < h1; ++hh) head_step(Ly, b, hh, s.zx + b * W, s.y + b * d, pv);
#pragma omp barrier
  lin(Ly.out_proj, s.y, d, x, dm, nb, dm * tid / nt, dm * (tid + 1) / nt, true, wk.xpad);   // the residual: x += out_proj(y)
#pragma omp barrier
}

#include "model_step.h"
