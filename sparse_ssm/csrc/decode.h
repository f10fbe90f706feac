// The fused decoding step's data (chapter 18a): a product as a `Lin`, a layer's tensors, the scratch; and the
// helpers its copies (decode_step.h, one per instruction set) call: two AVX-512 reductions and chapter 06b's
// sparse row kernels at the best level the CPU and the caller's ISA allow.
#pragma once
#include <omp.h>
#include "common.h"
#include "sparse_rows.h"

// One decoding step of a whole MambaLM in one call. Every matrix is a `Lin`: dense (out, in) row-major,
// or one of chapter 06b's packed layouts. Work inside a step is split over threads by rows of each
// product and by channels of the conv and the scan; threads meet at a barrier after each phase.
struct Lin {
  int kind;                       // 0 dense, 1 csr16, 2 bitmask
  int64_t out, in, W64;           // W64: words of 64 columns (bitmask)
  const float *w, *vals, *bias;   // w (out, in) when dense; vals: kept values when packed; bias (out) or null
  const int32_t* rp; const uint16_t* cols; const uint64_t* bits;
};
// the tensors and sizes of one residual layer
struct Layer {
  const float *norm_w, *conv_w, *conv_b, *A_log, *D; float *conv_state, *ssm_state;
  Lin in_proj, x_proj, dt_proj, out_proj; int64_t d, n, r, k;
};
// per-step work buffers
struct Scratch { float *xz, *u, *y; int64_t nb, dm, dmax, nxmax, pad; };          // shared by the team
struct Priv {                                                                    // each thread's own
  float *xn, *xdbl, *dt, *gate, *xpad;
  static int64_t size(const Scratch& s) { return s.nb * (s.dm + s.nxmax + 2 * s.dmax + s.pad) + 16; }
  static Priv at(float* q, const Scratch& s) {
    Priv p; p.xn = q; q += s.nb * s.dm; p.xdbl = q; q += s.nb * s.nxmax; p.dt = q; q += s.nb * s.dmax;
    p.gate = q; q += s.nb * s.dmax; p.xpad = q; return p;
  }
};

#ifdef SPARSE_X86
// four rows of a dense matrix times one vector: 16 columns a step, the tail under a mask, one sum per row
__attribute__((target("avx512f")))
static inline void dense4_avx512(const float* w, int64_t in, const float* x, float* out) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t c = 0;
  for (; c + 16 <= in; c += 16) {
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
