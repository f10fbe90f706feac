// The parts of a fused decoding step that every architecture shares, for one instruction set (KERNEL_ISA): the
// products (`lin`, any kind of decode.h's `Lin`), the RMSNorm and a horizontal sum. No include guard: a step's
// ISA body (mamba_step.h, mamba2_step.h, mamba3_step.h) includes it first, inside its ISA namespace.
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

// acc[b] = (W x[b])[r] for a group-quantized row r (kinds 3 and 4), any group size; x holds `inp` columns, for int4
// de-interleaved per group of 32 when `split` (16 even columns, then 16 odd ones: see `lin`)
template <int NB>
static inline void quant_row(const Lin& L, int64_t r, const float* x, int64_t ldx, float* acc, bool split) {
  const int64_t G = L.inp / L.group, g = L.group;
  for (int b = 0; b < NB; ++b) acc[b] = 0.0f;
  for (int64_t k = 0; k < G; ++k) {
    const float sc = lin_scale(L, r * G + k);
    for (int b = 0; b < NB; ++b) {
      const float* xb = x + b * ldx + k * g; float s = 0.0f;
      if (L.kind == 3) {
        const int8_t* q = L.q8 + r * L.inp + k * g;
#pragma omp simd reduction(+:s)
        for (int64_t c = 0; c < g; ++c) s += (float)q[c] * xb[c];
      } else {
        const uint8_t* q = L.q4 + (r * L.inp + k * g) / 2;
        if (split) {
#pragma omp simd reduction(+:s)
          for (int64_t c = 0; c < 16; ++c) s += (float)((q[c] & 15) - 8) * xb[c] + (float)((q[c] >> 4) - 8) * xb[16 + c];
        } else {
#pragma omp simd reduction(+:s)
          for (int64_t c = 0; c < g / 2; ++c) s += (float)((q[c] & 15) - 8) * xb[2 * c] + (float)((q[c] >> 4) - 8) * xb[2 * c + 1];
        }
      }
      acc[b] += sc * s;
    }
  }
}

// acc[b] = (W x[b])[r] for a CSR16 row with int8 values (kind 5): a scale per `group` kept values of the row
template <int NB>
static inline void csr_q8_row(const Lin& L, int64_t r, const float* x, int64_t ldx, float* acc) {
  const int32_t j0 = L.rp[r], j1 = L.rp[r + 1];
  for (int b = 0; b < NB; ++b) acc[b] = 0.0f;
  for (int32_t j = j0, k = L.srp[r]; j < j1; j += (int32_t)L.group, ++k) {
    const int32_t e = std::min<int32_t>(j1, j + (int32_t)L.group); const float sc = lin_scale(L, k);
    for (int b = 0; b < NB; ++b) {
      const float* xb = x + b * ldx; float s = 0.0f;
#pragma omp simd reduction(+:s)
      for (int32_t i = j; i < e; ++i) s += (float)L.q8[i] * xb[L.cols[i]];
      acc[b] += sc * s;
    }
  }
}

// y[b * ldy + r] (+)= bias[r] + (W x[b])[r] for rows r in [r0, r1) and NB batch rows
template <int NB>
static void lin_rows(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t r0, int64_t r1, bool add, bool split) {
  float acc[NB * 4];
  auto put = [&](int64_t r, int b, float v) { v += L.bias ? L.bias[r] : 0.0f; y[b * ldy + r] = add ? y[b * ldy + r] + v : v; };
  if (L.kind == 0 || L.kind == 3 || L.kind == 4) {
    int64_t r = r0;
#ifdef SPARSE_X86
    if (ISA == 2 && NB == 1 && L.kind == 0)        // four rows a step, one horizontal sum each
      for (; r + 4 <= r1; r += 4) { dense4_avx512(L.w + r * L.in, L.in, x, acc); for (int q = 0; q < 4; ++q) put(r + q, 0, acc[q]); }
    const int64_t G = L.inp / 32;
    if (ISA == 2 && NB == 1 && (L.kind == 3 || split) && L.group == 32 && G <= 512) {   // four quantized rows a step, scales as fp32 first
      float buf[4 * 512];
      for (; r + 4 <= r1; r += 4) {
        const float* sc = L.s32 ? L.s32 + r * G : buf;
        if (!L.s32) halves_avx512(L.s16 + r * G, 4 * G, buf, L.s16 + std::min(r + 16, L.out - 4) * G);
        if (L.kind == 3) q8x4_avx512(L.q8 + r * L.inp, L.inp, G, sc, x, acc);
        else q4x4_avx512(L.q4 + r * L.inp / 2, L.inp / 2, G, sc, x, acc);
        for (int q = 0; q < 4; ++q) put(r + q, 0, acc[q]);
      }
    }
#endif
    for (; r < r1; ++r) {
      if (L.kind == 0) dense_row<NB>(L.w + r * L.in, L.in, x, ldx, acc); else quant_row<NB>(L, r, x, ldx, acc, split);
      for (int b = 0; b < NB; ++b) put(r, b, acc[b]);
    }
    return;
  }
  if (L.kind == 5) {
#ifdef SPARSE_X86
    if (ISA == 2 && NB == 1 && L.group % 16 == 0) { for (int64_t r = r0; r < r1; ++r) put(r, 0, csr_q8_row_avx512(L, r, x)); return; }
#endif
    for (int64_t r = r0; r < r1; ++r) { csr_q8_row<NB>(L, r, x, ldx, acc); for (int b = 0; b < NB; ++b) put(r, b, acc[b]); }
    return;
  }
  // packed fp32: chapter 06b's row kernels write rows [0, m) of tmp; the bias and the sum follow
  float tmp[NB * 64];
  for (int64_t s0 = r0; s0 < r1; s0 += 64) {
    const int64_t m = std::min(r1, s0 + 64) - s0;
    if (L.kind == 1) csr_rows_any<NB>(ISA, L.rp + s0, L.cols, L.vals, x, ldx, tmp, 64, 0, m);
    else bitmask_rows_any<NB>(ISA, L.rp + s0, L.bits + s0 * L.W64, L.W64, L.vals, x, tmp, 64, 0, m);
    for (int b = 0; b < NB; ++b) for (int64_t i = 0; i < m; ++i) put(s0 + i, b, tmp[b * 64 + i]);
  }
}

// lin_rows over the batch rows, four at a time (each weight fetched once for up to four rows)
static void batch_rows(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t nb, int64_t r0, int64_t r1,
                       bool add, bool split) {
  for (int64_t b0 = 0; b0 < nb; b0 += 4) {
    const int64_t g = std::min<int64_t>(4, nb - b0);
    const float* xb = x + b0 * ldx; float* yb = y + b0 * ldy;
    if (g == 1) lin_rows<1>(L, xb, ldx, yb, ldy, r0, r1, add, split);
    else if (g == 2) lin_rows<2>(L, xb, ldx, yb, ldy, r0, r1, add, split);
    else if (g == 3) lin_rows<3>(L, xb, ldx, yb, ldy, r0, r1, add, split);
    else lin_rows<4>(L, xb, ldx, yb, ldy, r0, r1, add, split);
  }
}

// x (in floats) quantized as chapter 07k's reference does, per group of g columns: xs = max|x| / 127,
// xq = round(x / xs) (ties to even), and x' = xq * xs (floats, zeros past `in` up to `inp`)
static void quantize_x(const float* x, int64_t in, int64_t inp, int64_t g, float* xd, int8_t* xq, float* xs) {
  for (int64_t k = 0; k * g < inp; ++k) {
    const int64_t c0 = k * g, c1 = std::min(in, c0 + g); float m = 0.0f;
    for (int64_t c = c0; c < c1; ++c) m = std::max(m, std::fabs(x[c]));
    const float s = m / 127.0f; xs[k] = s;
    for (int64_t c = c0; c < c0 + g; ++c) {
      const float q = c < c1 && s > 0.0f ? std::nearbyint(x[c] / s) : 0.0f;
      xq[c] = (int8_t)q; xd[c] = q * s;
    }
  }
}

// rows [r0, r1) of y (nb, out) (+)= x (nb, in) W^T + bias for a quantized W (kinds 3, 4), on this thread: x is quantized
// into this thread's `xpad` (L.pad() floats a row), then either the VNNI kernels take the int8 codes (batch 1, groups
// of 32, int_dot on) or the fp32 path takes x' (int4 at 32 a group on AVX-512 reads it de-interleaved per group).
static void quant_lin(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t nb, int64_t r0, int64_t r1,
                      bool add, float* xpad) {
  const int64_t w = L.pad(), inp = L.inp, G = inp / L.group;
  const bool vnni = ISA == 2 && nb == 1 && L.group == 32 && int_dot(-1) && inp % (L.kind == 3 ? 64 : 128) == 0;
  const bool split = !vnni && ISA == 2 && nb == 1 && L.kind == 4 && L.group == 32;
  for (int64_t b = 0; b < nb; ++b) {
    float* p = xpad + b * w; int8_t* xq = reinterpret_cast<int8_t*>(p + inp); float* xs = p + inp + inp / 4 + 1;
    quantize_x(x + b * ldx, L.in, inp, L.group, p, xq, xs);
    if (split)
      for (int64_t g = 0; g < inp; g += 32) {
        float t[32]; std::memcpy(t, p + g, sizeof t);
        for (int l = 0; l < 16; ++l) { p[g + l] = t[2 * l]; p[g + 16 + l] = t[2 * l + 1]; }
      }
  }
  int64_t r = r0;
#ifdef SPARSE_X86
  if (vnni && r1 - r0 >= 4) {
    float* p = xpad; const int8_t* xq = reinterpret_cast<const int8_t*>(p + inp); float* xs = p + inp + inp / 4 + 1;
    float buf[4 * 512], acc[4];
    int8_t* xeo = reinterpret_cast<int8_t*>(xs + G + 15); int32_t* corr = reinterpret_cast<int32_t*>(xeo + inp);
    if (L.kind == 4)                                  // per block of four groups: their even columns, then their odd ones
      for (int64_t k = 0; 4 * k < G; ++k) {
        int8_t* e = xeo + 128 * k; int32_t s[16] = {};
        for (int64_t j = 0; j < 64; ++j) {
          const int64_t col = 32 * (4 * k + j / 16) + 2 * (j % 16);
          e[j] = xq[col]; e[64 + j] = xq[col + 1];
          s[j / 4] += 8 * (xq[col] + xq[col + 1]);
        }
        for (int l = 0; l < 16; ++l) corr[16 * k + l] = s[l];
      }
    if (G <= 512)
      for (; r + 4 <= r1; r += 4) {                   // the rows' scales times the activations', then four rows
        if (L.s32) std::memcpy(buf, L.s32 + r * G, 4 * G * sizeof(float));
        else halves_avx512(L.s16 + r * G, 4 * G, buf, L.s16 + std::min(r + 16, L.out - 4) * G);
        for (int q = 0; q < 4; ++q)
#pragma omp simd
          for (int64_t k = 0; k < G; ++k) buf[q * G + k] *= xs[k];
        if (L.kind == 3) q8x4_vnni(L.q8 + r * inp, inp, G, buf, xq, acc);
        else q4x4_vnni(L.q4 + r * inp / 2, inp / 2, G, buf, xeo, corr, acc);
        for (int q = 0; q < 4; ++q) { const float v = acc[q] + (L.bias ? L.bias[r + q] : 0.0f); y[r + q] = add ? y[r + q] + v : v; }
      }
  }
#endif
  batch_rows(L, xpad, w, y, ldy, nb, r, r1, add, split);   // the rest: the fp32 path on x'
}

// rows [r0, r1) of y (nb, out) (+)= x (nb, in) W^T + bias, on this thread; a bitmask matrix reads x padded to whole
// words of 64 columns, copied into this thread's `xpad`; a quantized one goes through `quant_lin`
static void lin(const Lin& L, const float* x, int64_t ldx, float* y, int64_t ldy, int64_t nb, int64_t r0, int64_t r1,
                bool add, float* xpad) {
  if (r0 >= r1) return;
  if (L.kind == 3 || L.kind == 4) { quant_lin(L, x, ldx, y, ldy, nb, r0, r1, add, xpad); return; }
  if (L.kind == 2) {
    for (int64_t b = 0; b < nb; ++b) {
      float* p = xpad + b * L.W64 * 64;
      std::memcpy(p, x + b * ldx, L.in * sizeof(float));
      std::fill(p + L.in, p + L.W64 * 64, 0.0f);
    }
    x = xpad; ldx = L.W64 * 64;
  }
  batch_rows(L, x, ldx, y, ldy, nb, r0, r1, add, false);
}

// out[b] = x[b] / rms(x[b]) * w over `dm` channels, for nb rows
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
