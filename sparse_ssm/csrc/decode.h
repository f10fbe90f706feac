// The fused decoding steps' shared data (chapters 18a-18c): a product as a `Lin` (dense, packed sparse or
// group-quantized), the flat argument lists read into them, and the helpers every copy of a step calls: two
// AVX-512 reductions and chapter 06b's sparse row kernels at the best level the CPU and the caller's ISA allow.
#pragma once
#include <omp.h>
#include "common.h"
#include "sparse_rows.h"

// Every matrix of a decoding step is a `Lin` y = W x + bias with W (out, in) held as one of:
//   0 dense fp32, row-major;  1 CSR16 and 2 bitmask (chapter 06b);
//   3 int8 and 4 int4 codes, symmetric, one scale per `group` input columns (chapter 07k): the codes of a row are
//     `inp` = in rounded up to a whole group (int4: two a byte, column 2k in the low nibble, stored code + 8), and
//     scales (out, inp / group) in fp16 (bits) or fp32;
//   5 CSR16 whose kept values are int8 codes, one scale per `group` kept values of a row (srp: a row's first scale).
// Work inside a step is split over threads by rows of each product; threads meet at a barrier after each phase.
struct Lin {
  int kind;                       // 0 dense, 1 csr16, 2 bitmask, 3 int8, 4 int4, 5 csr16 + int8 values
  int64_t out, in, W64, group, inp;
  const float *w, *vals, *bias;   // w (out, in) when dense; vals: kept values (1, 2); bias (out) or null
  const int32_t* rp; const uint16_t* cols; const uint64_t* bits;
  const int8_t* q8; const uint8_t* q4;    // codes (3, 5) or packed codes (4)
  const uint16_t* s16; const float* s32;  // scales: fp16 bits or fp32 (one of them)
  const int32_t* srp;                     // kind 5: index of each row's first scale
  int64_t pad() const {           // floats of scratch a thread needs to read x for this product (0: x in place)
    return kind == 2 ? W64 * 64 : kind == 3 || kind == 4 ? 2 * inp + 64 : 0;   // quantized: x', its codes and scales
  }
};

// Quantized products (kinds 3, 4) quantize their input too, as chapter 07k's reference does: per group of `group`
// columns, xs = max|x| / 127 and xq = round(x / xs), and they multiply x' = xq * xs. Where the CPU has AVX-512 VNNI
// the int8 dot products of codes and xq run on it (int_dot: 1, the default), else (0) the codes are converted to fp32
// and multiplied by x'. The same sums either way, up to float rounding: `int_dot(on)` switches, to measure both.
inline int int_dot_on = 1;
inline bool has_vnni() {
#ifdef SPARSE_X86
  static const bool v = __builtin_cpu_supports("avx512vnni"); return v;
#else
  return false;
#endif
}
inline int64_t int_dot(int64_t on) { if (on >= 0) int_dot_on = (int)on; return int_dot_on && has_vnni() ? 1 : 0; }  // in use now

// A step's work buffers: `sh` shared by the team (the architecture's), and each thread's own: the normed input
// `xn` (nb, dm), `xpad` (nb, the widest Lin::pad()) and the architecture's private scratch `pv`.
struct Work {
  int64_t nb, dm, pad, arch;      // batch rows, model width, xpad floats a row, floats of `pv`
  float *sh, *xn, *xpad, *pv;
  int64_t per() const { return nb * dm + nb * pad + arch + 16; }   // floats of one thread's part
  Work at(float* q) const { Work p = *this; p.xn = q; p.xpad = q + nb * dm; p.pv = p.xpad + nb * pad; return p; }
};

// fp16 bits to fp32 for a finite half (a scale always is): the 15 bits moved into place are the float
// 2^-112 times the value, normal or subnormal alike; one multiply rescales. Branch-free, so loops of it vectorise.
static inline float half_to_float(uint16_t h) {
  const uint32_t bits = (uint32_t)(h & 0x7fff) << 13;
  float f; std::memcpy(&f, &bits, 4); f *= 0x1p112f;
  return h & 0x8000 ? -f : f;
}
static inline float lin_scale(const Lin& L, int64_t i) { return L.s16 ? half_to_float(L.s16[i]) : L.s32[i]; }

#ifdef SPARSE_X86
// four rows of a dense matrix times one vector: 16 columns a step, the tail under a mask, one sum per row
__attribute__((target("avx512f")))
static inline void dense4_avx512(const float* w, int64_t in, const float* x, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t c = 0;
  for (; c + 16 <= in; c += 16) {
    for (int r = 4; r < 8; ++r) _mm_prefetch((const char*)(w + r * in + c), _MM_HINT_T0);   // the next four rows: see q8x4_vnni
    const __m512 xv = _mm512_loadu_ps(x + c);
    a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + c), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + in + c), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 2 * in + c), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + 3 * in + c), xv, a3);
  }
  if (c < in) {
    const __mmask16 m = (__mmask16)((1u << (in - c)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + c);
    a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + c), xv, a0);
    a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + in + c), xv, a1);
    a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + 2 * in + c), xv, a2);
    a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, w + 3 * in + c), xv, a3);
  }
  out[0] = _mm512_reduce_add_ps(a0); out[1] = _mm512_reduce_add_ps(a1);
  out[2] = _mm512_reduce_add_ps(a2); out[3] = _mm512_reduce_add_ps(a3);
}
// four rows of int8 codes (groups of 32 columns) times one vector: per group, 32 products in two vectors, then
// the group's scale once; `ldq` bytes a row, `G` groups, scales (4 rows of G) as fp32 in `sc`
__attribute__((target("avx512f,avx512bw")))
static inline void q8x4_avx512(const int8_t* q, int64_t ldq, int64_t G, const float* sc, const float* x, float* out) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  for (int64_t g = 0; g < G; ++g) {
    const __m512 x0 = _mm512_loadu_ps(x + 32 * g), x1 = _mm512_loadu_ps(x + 32 * g + 16);
    for (int r = 8; r < 12; ++r) _mm_prefetch((const char*)(q + r * ldq + 32 * g), _MM_HINT_T0);
    for (int r = 0; r < 4; ++r) {
      const int8_t* p = q + r * ldq + 32 * g;
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)p)));
      const __m512 w1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(p + 16))));
      a[r] = _mm512_fmadd_ps(_mm512_fmadd_ps(w1, x1, _mm512_mul_ps(w0, x0)), _mm512_set1_ps(sc[r * G + g]), a[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_ps(a[r]);
}
// the same for int4: a group is 16 bytes, the low nibbles the even columns, the high the odd ones; x is read
// de-interleaved per group (xe: 16 even columns, then 16 odd ones), and the codes are stored + 8
__attribute__((target("avx512f,avx512bw")))
static inline void q4x4_avx512(const uint8_t* q, int64_t ldq, int64_t G, const float* sc, const float* xe, float* out) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const __m512i lo = _mm512_set1_epi32(15), eight = _mm512_set1_epi32(8);
  for (int64_t g = 0; g < G; ++g) {
    const __m512 x0 = _mm512_loadu_ps(xe + 32 * g), x1 = _mm512_loadu_ps(xe + 32 * g + 16);
    if (g % 4 == 0) for (int r = 8; r < 12; ++r) _mm_prefetch((const char*)(q + r * ldq + 16 * g), _MM_HINT_T0);
    for (int r = 0; r < 4; ++r) {
      const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i*)(q + r * ldq + 16 * g)));
      const __m512 w0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_and_si512(v, lo), eight));
      const __m512 w1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_srli_epi32(v, 4), eight));
      a[r] = _mm512_fmadd_ps(_mm512_fmadd_ps(w1, x1, _mm512_mul_ps(w0, x0)), _mm512_set1_ps(sc[r * G + g]), a[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_ps(a[r]);
}
// int8 codes against int8 activations with VNNI, four rows, groups of 32 taken two at a time (64 bytes): |xq| is the
// unsigned operand and xq's sign is moved onto the codes; lanes 0-7 hold the first group's sums, 8-15 the second's;
// sc: each row's group scales already multiplied by the activations' (4 rows of G, fp32). The hardware prefetcher
// does not keep ahead of four short row streams read from memory: a software prefetch of the rows two blocks
// ahead doubled a 154 MB product's speed on the development machine (prefetches past the end do not fault)
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static inline void q8x4_vnni(const int8_t* q, int64_t ldq, int64_t G, const float* sc, const int8_t* xq, float* out) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const __m512i pair = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  for (int64_t g = 0; g + 2 <= G; g += 2) {
    const __m512i xv = _mm512_loadu_si512(xq + 32 * g);
    const __mmask64 neg = _mm512_movepi8_mask(xv);
    const __m512i ax = _mm512_abs_epi8(xv);
    for (int r = 8; r < 12; ++r) _mm_prefetch((const char*)(q + r * ldq + 32 * g), _MM_HINT_T0);   // rows two blocks ahead
    for (int r = 0; r < 4; ++r) {
      __m512i w = _mm512_loadu_si512(q + r * ldq + 32 * g);
      w = _mm512_mask_sub_epi8(w, neg, _mm512_setzero_si512(), w);
      const __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ax, w);
      const __m512 s = _mm512_permutexvar_ps(pair, _mm512_castpd_ps(_mm512_castpd128_pd512(_mm_load_sd((const double*)(sc + r * G + g)))));
      a[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, a[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_ps(a[r]);
}
// int4 codes (stored + 8, so 0..15: the unsigned operand as they are) against int8 activations with VNNI, four rows,
// groups of 32 taken four at a time (64 bytes of codes): the low nibbles (even columns of the four groups) meet xe,
// the high ones xo (xq rearranged so per block: the four groups' even columns, then their odd ones); lane 4k..4k+3
// belongs to group k of the block; `corr` (16 lanes a block) is 8 times the lane's sum of xq, the +8 taken back;
// sc: each row's group scales already multiplied by the activations'
__attribute__((target("avx512f,avx512bw,avx512vnni")))
static inline void q4x4_vnni(const uint8_t* q, int64_t ldq, int64_t G, const float* sc, const int8_t* xeo, const int32_t* corr, float* out) {
  __m512 a[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const __m512i nib = _mm512_set1_epi8(15);
  const __m512i lane4 = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
  for (int64_t g = 0, k = 0; g + 4 <= G; g += 4, ++k) {
    const __m512i xe = _mm512_loadu_si512(xeo + 128 * k), xo = _mm512_loadu_si512(xeo + 128 * k + 64);
    const __m512i c = _mm512_loadu_si512(corr + 16 * k);
    for (int r = 8; r < 12; ++r) _mm_prefetch((const char*)(q + r * ldq + 16 * g), _MM_HINT_T0);
    for (int r = 0; r < 4; ++r) {
      const __m512i v = _mm512_loadu_si512(q + r * ldq + 16 * g);
      const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, xe);
      d = _mm512_sub_epi32(_mm512_dpbusd_epi32(d, hi, xo), c);
      const __m512 s = _mm512_permutexvar_ps(lane4, _mm512_castps128_ps512(_mm_loadu_ps(sc + r * G + g)));
      a[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), s, a[r]);
    }
  }
  for (int r = 0; r < 4; ++r) out[r] = _mm512_reduce_add_ps(a[r]);
}
// one CSR16 row with int8 values (kind 5) times one vector, for groups of a multiple of 16 kept values: 16 a step
// (their columns widened, x gathered at them, the codes converted and scaled), the scale changing every g/16 steps;
// the tail under a mask. As chapter 06b's fp32 rows, short rows outrun the hardware prefetcher: the rows after
// this one are prefetched.
__attribute__((target("avx512f,avx512bw,avx512vl")))
static inline float csr_q8_row_avx512(const Lin& L, int64_t r, const float* x) {
  const int32_t j0 = L.rp[r], j1 = L.rp[r + 1], per = (int32_t)L.group / 16;
  _mm_prefetch((const char*)(L.q8 + j1 + 256), _MM_HINT_T0);
  _mm_prefetch((const char*)(L.cols + j1 + 256), _MM_HINT_T0); _mm_prefetch((const char*)(L.cols + j1 + 288), _MM_HINT_T0);
  if (L.s16) _mm_prefetch((const char*)(L.s16 + L.srp[r] + 64), _MM_HINT_T0);   // and their scales, a third stream
  else _mm_prefetch((const char*)(L.s32 + L.srp[r] + 32), _MM_HINT_T0);
  __m512 acc = _mm512_setzero_ps(), acc2 = acc;          // two chains of FMAs
  int32_t k = L.srp[r], left = per, i = j0;              // left: steps before the next group's scale
  __m512 sc = _mm512_set1_ps(lin_scale(L, k));
  for (; i + 32 <= j1; i += 32) {                         // two steps a turn, one chain each (no division, no branch)
    const __m512i c = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(L.cols + i)));
    const __m512i c2 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(L.cols + i + 16)));
    const __m512 w = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(L.q8 + i)))), sc);
    if (--left == 0) { sc = _mm512_set1_ps(lin_scale(L, ++k)); left = per; }
    const __m512 w2 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(L.q8 + i + 16)))), sc);
    if (--left == 0 && i + 32 < j1) { sc = _mm512_set1_ps(lin_scale(L, ++k)); left = per; }
    acc = _mm512_fmadd_ps(w, _mm512_i32gather_ps(c, x, 4), acc);
    acc2 = _mm512_fmadd_ps(w2, _mm512_i32gather_ps(c2, x, 4), acc2);
  }
  for (; i + 16 <= j1; i += 16) {
    const __m512i c = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(L.cols + i)));
    const __m512 w = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i*)(L.q8 + i)))), sc);
    acc = _mm512_fmadd_ps(w, _mm512_i32gather_ps(c, x, 4), acc);
    if (--left == 0 && i + 16 < j1) { sc = _mm512_set1_ps(lin_scale(L, ++k)); left = per; }
  }
  if (i < j1) {
    const __mmask16 m = (__mmask16)((1u << (j1 - i)) - 1);
    const __m512i c = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, L.cols + i));
    const __m512 w = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, L.q8 + i))), sc);
    acc = _mm512_fmadd_ps(w, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, c, x, 4), acc);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(acc, acc2));
}
// n fp16 scales to fp32, 16 a step (vcvtph2ps), and a prefetch of the scales a few blocks of rows ahead: the scales are
// a second stream beside the codes, and without it each block of rows waits for its scales' cache line
__attribute__((target("avx512f")))
static inline void halves_avx512(const uint16_t* h, int64_t n, float* out, const uint16_t* ahead) {
  _mm_prefetch((const char*)ahead, _MM_HINT_T0); _mm_prefetch((const char*)ahead + 64, _MM_HINT_T0); _mm_prefetch((const char*)ahead + 128, _MM_HINT_T0);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(h + i))));
  for (; i < n; ++i) out[i] = half_to_float(h[i]);
}
__attribute__((target("avx512f"))) static inline float hsum16_avx512(const float* a) { return _mm512_reduce_add_ps(_mm512_loadu_ps(a)); }
#endif
// chapter 06b's row kernels at the best level the CPU and the caller's ISA allow
template <int NB> static void csr_rows_any(int isa, const int32_t* rp, const uint16_t* col, const float* val, const float* x,
                                           int64_t in, float* y, int64_t out, int64_t r0, int64_t r1) {
#ifdef SPARSE_X86
  if (NB == 1 && isa >= 2) { csr_rows_avx512(rp, col, val, x, y, r0, r1); return; }
  if (isa >= 1) { csr_rows_avx2<NB>(rp, col, val, x, in, y, out, r0, r1); return; }
#endif
  csr_rows<NB>(rp, col, val, x, in, y, out, r0, r1);
}
template <int NB> static void bitmask_rows_any(int isa, const int32_t* rp, const uint64_t* bits, int64_t W64, const float* val,
                                               const float* x, float* y, int64_t out, int64_t r0, int64_t r1) {
#ifdef SPARSE_X86
  if (isa >= 2) { bitmask_rows_avx512<NB>(rp, bits, W64, val, x, y, out, r0, r1); return; }
#endif
  bitmask_rows<NB>(rp, bits, W64, val, x, y, out, r0, r1);
}
