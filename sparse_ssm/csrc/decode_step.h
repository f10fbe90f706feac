// One copy of the fused decoding step for the instruction set KERNEL_ISA: decode.cpp compiles this file three
// times (isa_copies.h). ISA is that level, for the few explicit AVX-512 paths.
constexpr int ISA = KERNEL_ISA;
#include "vmath.h"

// acc[b] = <w, x[b * ldx + :]> for NB batch rows: 32 columns a step in vector registers, then a tree of adds
template <int NB>
static inline void dense_row(const float* __restrict w, int64_t in, const float* __restrict x, int64_t ldx, float* acc) {
  constexpr int V = 32;
  float a[NB][V] = {};
  int64_t c = 0;
  for (; c + V <= in; c += V)
    for (int b = 0; b < NB; ++b) {
      const float* __restrict xb = x + b * ldx + c;
#pragma omp simd
      for (int l = 0; l < V; ++l) a[b][l] += w[c + l] * xb[l];
    }
  for (int b = 0; b < NB; ++b) {
    float t[16];
    for (int l = 0; l < 16; ++l) t[l] = a[b][l] + a[b][l + 16];
    for (int l = 0; l < 8; ++l) t[l] += t[l + 8];
    for (int l = 0; l < 4; ++l) t[l] += t[l + 4];
    float s = (t[0] + t[2]) + (t[1] + t[3]);
    for (int64_t cc = c; cc < in; ++cc) s += w[cc] * x[b * ldx + cc];
    acc[b] = s;
  }
}

// y[b * ldy + r] (+)= bias[r] + (W x[b])[r] for rows r in [r0, r1) and NB batch rows
template <int NB>
static void lin_rows(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t r0, int64_t r1, bool add) {
  float acc[NB * 4];
  auto put = [&](int64_t r, int b, float v) { v += L.bias ? L.bias[r] : 0.0f; y[b * ldy + r] = add ? y[b * ldy + r] + v : v; };
  if (L.kind == 0) {
    int64_t r = r0;
#ifdef SPARSE_X86
    if (ISA == 2 && NB == 1)                       // four rows a step, one horizontal sum each
      for (; r + 4 <= r1; r += 4) { dense4_avx512(L.w + r * L.in, L.in, x, acc); for (int q = 0; q < 4; ++q) put(r + q, 0, acc[q]); }
#endif
    for (; r < r1; ++r) { dense_row<NB>(L.w + r * L.in, L.in, x, ldx, acc); for (int b = 0; b < NB; ++b) put(r, b, acc[b]); }
    return;
  }
  // packed: chapter 06b's row kernels write rows [0, m) of tmp; the bias and the sum follow
  float tmp[NB * 64];
  for (int64_t s0 = r0; s0 < r1; s0 += 64) {
    const int64_t m = std::min(r1, s0 + 64) - s0;
    if (L.kind == 1) csr_rows_any<NB>(ISA, L.rp + s0, L.cols, L.vals, x, ldx, tmp, 64, 0, m);
    else bitmask_rows_any<NB>(ISA, L.rp + s0, L.bits + s0 * L.W64, L.W64, L.vals, x, tmp, 64, 0, m);
    for (int b = 0; b < NB; ++b) for (int64_t i = 0; i < m; ++i) put(s0 + i, b, tmp[b * 64 + i]);
  }
}

// rows [r0, r1) of y (nb, out) (+)= x (nb, in) W^T + bias, on this thread; a bitmask matrix reads x
// padded to whole words of 64 columns, copied into this thread's `xpad`
static void lin(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t nb, int64_t r0, int64_t r1,
                bool add, float* xpad) {
  if (r0 >= r1) return;
  if (L.kind == 2) {
    for (int64_t b = 0; b < nb; ++b) {
      float* p = xpad + b * L.W64 * 64;
      std::memcpy(p, x + b * ldx, L.in * sizeof(float));
      std::fill(p + L.in, p + L.W64 * 64, 0.0f);
    }
    x = xpad; ldx = L.W64 * 64;
  }
  for (int64_t b0 = 0; b0 < nb; b0 += 4) {
    const int64_t g = std::min<int64_t>(4, nb - b0);
    const float* xb = x + b0 * ldx; float* yb = y + b0 * ldy;
    if (g == 1) lin_rows<1>(L, xb, ldx, yb, ldy, r0, r1, add);
    else if (g == 2) lin_rows<2>(L, xb, ldx, yb, ldy, r0, r1, add);
    else if (g == 3) lin_rows<3>(L, xb, ldx, yb, ldy, r0, r1, add);
    else lin_rows<4>(L, xb, ldx, yb, ldy, r0, r1, add);
  }
}

static void rmsnorm(const float* x, const float* w, float eps, int64_t nb, int64_t dm, float* out) {
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * dm; float s = 0;
#pragma omp simd reduction(+:s)
    for (int64_t i = 0; i < dm; ++i) s += xb[i] * xb[i];
    const float inv = 1.0f / std::sqrt(s / dm + eps);
#pragma omp simd
    for (int64_t i = 0; i < dm; ++i) out[b * dm + i] = xb[i] * inv * w[i];
  }
}

static inline float hsum16(const float* a) {
#ifdef SPARSE_X86
  if (ISA == 2) return hsum16_avx512(a);
#endif
  float t[8];
  for (int l = 0; l < 8; ++l) t[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) t[l] += t[l + 4];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

// x (nb, dm) += mixer(norm(x)) for one layer, updating its conv and SSM states in place. Thread `tid` of
// `nt` owns channels [c0, c1): it computes their rows of in_proj (x and z halves), conv, dt_proj and
// scan, so these need no barrier between them; x_proj (a few dozen rows) is computed by every thread
// on its own; threads meet after the conv (x_proj needs every channel), after the scan (out_proj
// needs every channel) and after out_proj (the next norm needs all of x).
static void layer_step(const Layer& Ly, float* x, int64_t nb, int64_t dm, float eps, const Scratch& s, const Priv& p, int tid, int nt) {
  const int64_t d = Ly.d, n = Ly.n, r = Ly.r, k = Ly.k, nx = r + 2 * n;
  const int64_t c0 = d * tid / nt, c1 = d * (tid + 1) / nt;
  rmsnorm(x, Ly.norm_w, eps, nb, dm, p.xn);
  lin(Ly.in_proj, p.xn, dm, s.xz, 2 * d, nb, c0, c1, false, p.xpad);          // xz (nb, 2d): x half ...
  lin(Ly.in_proj, p.xn, dm, s.xz, 2 * d, nb, d + c0, d + c1, false, p.xpad);  // ... and z half
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
  lin(Ly.x_proj, s.u, d, p.xdbl, nx, nb, 0, nx, false, p.xpad);              // xdbl (nb, r + 2n): dt rank, B, C
  lin(Ly.dt_proj, p.xdbl, nx, p.dt, d, nb, c0, c1, false, p.xpad);           // dt before softplus, bias included
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
  lin(Ly.out_proj, s.y, d, x, dm, nb, dm * tid / nt, dm * (tid + 1) / nt, true, p.xpad);   // the residual: x += out_proj(y)
#pragma omp barrier
}

static void model_step(const std::vector<Layer>& layers, float* x, int64_t nb, int64_t dm, float eps,
                       const float* norm_f, const Lin& head, float* logits, int64_t ldl, const Scratch& s,
                       std::vector<float>& priv, int64_t per, int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = nt > 1 ? omp_get_thread_num() : 0, team = nt > 1 ? omp_get_num_threads() : 1;
    const Priv p = Priv::at(priv.data() + tid * per, s);
    for (const Layer& Ly : layers) layer_step(Ly, x, nb, dm, eps, s, p, tid, team);
    rmsnorm(x, norm_f, eps, nb, dm, p.xn);
    // the head: rows split in blocks of 16 so that each thread streams its own part of the matrix
    const int64_t blocks = (head.out + 15) / 16, b0 = blocks * tid / team, b1 = blocks * (tid + 1) / team;
    lin(head, p.xn, dm, logits, ldl, nb, b0 * 16, std::min(head.out, b1 * 16), false, p.xpad);
  }
}
