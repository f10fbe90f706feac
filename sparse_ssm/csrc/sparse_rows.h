// Chapter 06b's sparse row kernels, shared by the sparse products (sparse.cpp) and the decoding step
// (decode.cpp): a portable loop per layout, and SIMD loops that carry their own targets (the caller picks
// one from isa_level(), common.h).
#pragma once
#include "common.h"

// Both layouts multiply y (nb, out) = x (nb, in) @ W^T for a pruned W without ever building W.
// CSR16:   rowptr (out + 1) int32 offsets into cols (nnz, uint16) and vals (nnz, fp32)
// bitmask: rowptr (out + 1) int32 offsets into vals (nnz, fp32, row-major), bits (out, W64) uint64:
//          bit t of word j marks column 64 j + t.  x is read padded to whole words (zeros past `in`).
// Batch rows are handled NB at a time so that every weight fetched is used NB times.

template <int NB>
static void csr_rows(const int32_t* rp, const uint16_t* col, const float* val, const float* x, int64_t in,
                     float* y, int64_t out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    float a[NB][2] = {};
    int32_t k = rp[r]; const int32_t e = rp[r + 1];
    for (; k + 2 <= e; k += 2)  // two partial sums break the chain of dependent additions
      for (int b = 0; b < NB; ++b) { a[b][0] += val[k] * x[b * in + col[k]]; a[b][1] += val[k + 1] * x[b * in + col[k + 1]]; }
    for (; k < e; ++k) for (int b = 0; b < NB; ++b) a[b][0] += val[k] * x[b * in + col[k]];
    for (int b = 0; b < NB; ++b) y[b * out + r] = a[b][0] + a[b][1];
  }
}

template <int NB>
static void bitmask_rows(const int32_t* rp, const uint64_t* bits, int64_t W64, const float* val, const float* x,
                         float* y, int64_t out, int64_t r0, int64_t r1) {
  const int64_t in = W64 * 64;
  for (int64_t r = r0; r < r1; ++r) {
    const float* v = val + rp[r]; const uint64_t* m = bits + r * W64; float a[NB] = {};
    for (int64_t j = 0; j < W64; ++j)
      for (uint64_t w = m[j]; w; w &= w - 1) {
        const int64_t c = j * 64 + __builtin_ctzll(w); const float wv = *v++;
        for (int b = 0; b < NB; ++b) a[b] += wv * x[b * in + c];
      }
    for (int b = 0; b < NB; ++b) y[b * out + r] = a[b];
  }
}

#ifdef SPARSE_X86
__attribute__((target("avx2,fma"))) static inline float hsum8(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s)); s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
// CSR16, eight nonzeros at a time: widen eight column indices, gather x at them, one FMA
template <int NB>
__attribute__((target("avx2,fma")))
static void csr_rows_avx2(const int32_t* rp, const uint16_t* col, const float* val, const float* x, int64_t in,
                          float* y, int64_t out, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int32_t k = rp[r]; const int32_t e = rp[r + 1];
    __m256 acc[NB][2];                                     // two chains of FMAs, taking turns
    for (int b = 0; b < NB; ++b) acc[b][0] = acc[b][1] = _mm256_setzero_ps();
    for (int h = 0; k + 8 <= e; k += 8, h ^= 1) {
      const __m256i c = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i*)(col + k)));
      const __m256 w = _mm256_loadu_ps(val + k);
      for (int b = 0; b < NB; ++b) acc[b][h] = _mm256_fmadd_ps(w, _mm256_i32gather_ps(x + b * in, c, 4), acc[b][h]);
    }
    for (int b = 0; b < NB; ++b) {
      float t = hsum8(_mm256_add_ps(acc[b][0], acc[b][1]));
      for (int32_t kk = k; kk < e; ++kk) t += val[kk] * x[b * in + col[kk]];
      y[b * out + r] = t;
    }
  }
}
// bitmask, sixteen columns at a time: one expanding load puts the chunk's packed values in the lanes
// whose bit is set (zeros elsewhere); the four chunk offsets of a word come from one prefix sum of
// byte popcounts, so the chunks do not wait on each other
template <int NB>
__attribute__((target("avx512f,popcnt")))
static void bitmask_rows_avx512(const int32_t* rp, const uint64_t* bits, int64_t W64, const float* val, const float* x,
                                float* y, int64_t out, int64_t r0, int64_t r1) {
  const int64_t in = W64 * 64;
  for (int64_t r = r0; r < r1; ++r) {
    const float* v = val + rp[r]; const uint64_t* m = bits + r * W64;
    __m512 acc[NB][4];                                     // one chain of FMAs per 16-column chunk of a word
    for (int b = 0; b < NB; ++b) for (int q = 0; q < 4; ++q) acc[b][q] = _mm512_setzero_ps();
    _mm_prefetch((const char*)(m + 2 * W64), _MM_HINT_T0); _mm_prefetch((const char*)(m + 2 * W64 + 8), _MM_HINT_T0);
    for (int64_t j = 0; j < W64; ++j) {
      const uint64_t w = m[j];
      _mm_prefetch((const char*)(v + 512), _MM_HINT_T0);   // values 2 KiB ahead, about a line per word, as in the CSR16 loop
      if (!w) continue;
      uint64_t c = w - ((w >> 1) & 0x5555555555555555ULL);
      c = (c & 0x3333333333333333ULL) + ((c >> 2) & 0x3333333333333333ULL);
      c = (c + (c >> 4)) & 0x0f0f0f0f0f0f0f0fULL;          // popcount of each byte
      const uint64_t pre = c * 0x0101010101010101ULL;      // byte k: popcounts of bytes 0..k
      const int64_t o[4] = {0, (int64_t)((pre >> 8) & 0xff), (int64_t)((pre >> 24) & 0xff), (int64_t)((pre >> 40) & 0xff)};
      for (int q = 0; q < 4; ++q) {
        const __m512 e = _mm512_maskz_expandloadu_ps((__mmask16)(w >> (16 * q)), v + o[q]);  // no branch: a zero mask loads zeros
        for (int b = 0; b < NB; ++b) acc[b][q] = _mm512_fmadd_ps(e, _mm512_loadu_ps(x + b * in + j * 64 + 16 * q), acc[b][q]);
      }
      v += pre >> 56;
    }
    for (int b = 0; b < NB; ++b)
      y[b * out + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[b][0], acc[b][1]), _mm512_add_ps(acc[b][2], acc[b][3])));
  }
}
// CSR16 rows times one vector, sixteen kept entries a step: widen the column indices, gather x, one FMA;
// the row's last entries under a mask instead of a scalar loop
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void csr_rows_avx512(const int32_t* rp, const uint16_t* col, const float* val, const float* x,
                            float* y, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    int32_t k = rp[r]; const int32_t e = rp[r + 1];
    _mm_prefetch((const char*)(val + e + 384), _MM_HINT_T0); _mm_prefetch((const char*)(val + e + 400), _MM_HINT_T0);
    _mm_prefetch((const char*)(col + e + 384), _MM_HINT_T0);  // the rows after this one: short rows outrun the hardware prefetcher
    __m512 acc = _mm512_setzero_ps(), acc2 = acc;           // two chains of FMAs
    for (; k + 32 <= e; k += 32) {
      _mm_prefetch((const char*)(val + k + 512), _MM_HINT_T0); _mm_prefetch((const char*)(val + k + 528), _MM_HINT_T0);
      _mm_prefetch((const char*)(col + k + 512), _MM_HINT_T0);
      const __m512i c = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(col + k)));
      const __m512i c2 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(col + k + 16)));
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(val + k), _mm512_i32gather_ps(c, x, 4), acc);
      acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(val + k + 16), _mm512_i32gather_ps(c2, x, 4), acc2);
    }
    for (; k + 16 <= e; k += 16) {
      const __m512i c = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(col + k)));
      acc = _mm512_fmadd_ps(_mm512_loadu_ps(val + k), _mm512_i32gather_ps(c, x, 4), acc);
    }
    acc = _mm512_add_ps(acc, acc2);
    if (k < e) {
      const __mmask16 m = (__mmask16)((1u << (e - k)) - 1);
      const __m512i c = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, col + k));
      acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, val + k), _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, c, x, 4), acc);
    }
    y[r] = _mm512_reduce_add_ps(acc);
  }
}
#endif
