// The scan's register kernel: the state of a block in registers through a chunk of steps. Included by
// scan_kernel.h in its AVX-512 copy only.

// AVX-512, fp32, n == 16: every function carries its target, so the file builds with any x86 compiler
#define K512 __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
// e^r on |r| <= ln2/2, lowest degree first: a degree-6 polynomial fitted for the smallest relative error
// (chapter 05a fits it and checks these fp32 values, EXP_POLY)
static constexpr float EXP_C[7] = {1.0f, 1.0f, 0.49999991059303284f, 0.16666419804096222f, 0.04166822507977486f, 0.008374815806746483f, 0.0013836845755577087f};
// e^x = 2^k e^r: k = round(x / ln 2) by the 1.5 * 2^23 shift, r = x - k ln 2 with ln 2 in two parts,
// e^r a degree-6 minimax polynomial on |r| <= ln2/2, 2^k applied exactly by scalef (0 far below, inf above)
K512 static inline __m512 exp16(__m512 x) {
  const __m512 shift = _mm512_set1_ps(12582912.0f);
  const __m512 k = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), shift), shift);
  __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.42860682030941723e-06f), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(EXP_C[6]), r, _mm512_set1_ps(EXP_C[5]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[4]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[3]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[2]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[1]));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EXP_C[0]));
  return _mm512_scalef_ps(p, k);
}
// 1 / d to about one fp32 rounding: the 14-bit estimate and one Newton step (a division is many times slower)
K512 static inline __m512 rcp16(__m512 d) {
  const __m512 r = _mm512_rcp14_ps(d);
  return _mm512_mul_ps(r, _mm512_fnmadd_ps(d, r, _mm512_set1_ps(2.0f)));
}
// from one exponential t = e^-|x| in (0, 1]: sigmoid(x) = (x >= 0 ? 1 : t) / (1 + t), and (SP) the softplus
// max(x, 0) + log(1 + t), the log as the generic vlog1p01 (1 + t halved above sqrt 2, then the atanh series)
template <bool SP> K512 static inline __m512 sigmoid16(__m512 x, __m512* sp = nullptr) {
  const __m512 t = exp16(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_abs_ps(x)));
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GE_OQ);
  const __m512 sg = _mm512_mul_ps(_mm512_mask_blend_ps(pos, t, _mm512_set1_ps(1.0f)), rcp16(_mm512_add_ps(t, _mm512_set1_ps(1.0f))));
  if (SP) {
    const __mmask16 big = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0.41421356f), _CMP_GT_OQ);
    const __m512 f = _mm512_mask_blend_ps(big, t, _mm512_mul_ps(_mm512_sub_ps(t, _mm512_set1_ps(1.0f)), _mm512_set1_ps(0.5f)));
    const __m512 q = _mm512_mul_ps(f, rcp16(_mm512_add_ps(f, _mm512_set1_ps(2.0f)))), q2 = _mm512_mul_ps(q, q);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 9.0f), q2, _mm512_set1_ps(1.0f / 7.0f));
    p = _mm512_fmadd_ps(p, q2, _mm512_set1_ps(1.0f / 5.0f));
    p = _mm512_fmadd_ps(p, q2, _mm512_set1_ps(1.0f / 3.0f));
    p = _mm512_fmadd_ps(p, q2, _mm512_set1_ps(1.0f));
    const __m512 l = _mm512_fmadd_ps(_mm512_add_ps(q, q), p, _mm512_maskz_mov_ps(big, _mm512_set1_ps(0.693147180559945309f)));
    *sp = _mm512_add_ps(_mm512_max_ps(x, _mm512_setzero_ps()), l);
  }
  return sg;
}
// the next block's rows of the (b, l, d) tensors, fetched while this block computes: one 64-byte line
// per step and tensor, d floats apart. Inline asm, because GCC drops prefetch builtins from loops it
// vectorises; prefetchw for the rows the next block will write
struct Pf {
  const char* p[4]; int n = 0; bool w; int64_t stride, len;
  Pf(int64_t d, int64_t len_, bool write) : w(write), stride(d * 4), len(len_) {}
  void add(const float* x, int64_t off) { if (x && len > 0) p[n++] = reinterpret_cast<const char*>(x + off); }
  inline void at(int64_t s) const {
    if (s >= len) return;
    for (int i = 0; i < n; ++i) {
      if (w) __asm__ volatile("prefetchw %0" : : "m"(*(p[i] + s * stride)));
      else __asm__ volatile("prefetcht0 %0" : : "m"(*(p[i] + s * stride)));
    }
  }
};
// per step, the lane vectors of the scratch sc (len, SC, W): dt, dt u, D u (forward) or the gated
// dL/dy (backward), the output <C, h>, the backward's sums over j of A_j a_j and B_j g_j, and the
// sigmoids of delta + bias (the softplus's derivative) and of z, for the lane-wise loops after
K512 static void prep16(const Args<float>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t len,
                        const Consts<float>& k, float* __restrict sc, bool bwd) {
  alignas(64) float pu[W], pd[W], pz[W], pg[W];
  const __m512 bias = _mm512_loadu_ps(k.bias.data()), Dv = _mm512_loadu_ps(k.D.data());
  for (int64_t s = 0; s < len; ++s, sc += SC * W) {
    const int64_t off = (b * a.L + t0 + s) * a.d + c0;
    const __m512 u = _mm512_loadu_ps(lanes(a.u, off, nc, pu)), x = _mm512_add_ps(_mm512_loadu_ps(lanes(a.delta, off, nc, pd)), bias);
    __m512 dt = x;
    if (a.sp) _mm512_store_ps(sc + 6 * W, sigmoid16<true>(x, &dt));
    _mm512_store_ps(sc, dt); _mm512_store_ps(sc + W, _mm512_mul_ps(dt, u));
    if (!bwd) { _mm512_store_ps(sc + 2 * W, _mm512_mul_ps(Dv, u)); continue; }
    const __m512 gy = _mm512_loadu_ps(lanes(a.gy, off, nc, pg));
    if (a.z) {   // gated: dL/dy silu(z), and dL/dz as a factor of the output before the gate, <C, h> + D u
      const __m512 z = _mm512_loadu_ps(lanes(a.z, off, nc, pz)), sz = sigmoid16<false>(z), one = _mm512_set1_ps(1.0f);
      _mm512_store_ps(sc + 2 * W, _mm512_mul_ps(gy, _mm512_mul_ps(z, sz)));
      _mm512_store_ps(sc + 3 * W, _mm512_mul_ps(Dv, u));
      _mm512_store_ps(sc + 7 * W, _mm512_mul_ps(_mm512_mul_ps(gy, sz), _mm512_fmadd_ps(z, _mm512_sub_ps(one, sz), one)));
    } else {
      _mm512_store_ps(sc + 2 * W, gy);
    }
  }
}
// forward: 8 of the 16 state vectors in registers (two passes over the chunk, j < 8 and j >= 8, so that
// the exp's constants and the accumulators fit in the 32 registers too); per (step, j): the decay, the
// update, the readout into the scratch's y
template <int J0>
K512 __attribute__((noinline)) static void fwd_core16(const float* __restrict At, const float* __restrict B,
    const float* __restrict C, float* __restrict sc, int64_t len, float* __restrict h, const Pf& pf) {
  __m512 hv[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) hv[j] = _mm512_loadu_ps(h + (J0 + j) * W);
  for (int64_t s = 0; s < len; ++s, B += 16, C += 16, sc += SC * W) {
    if (J0 == 0) pf.at(s);
    const __m512 vdt = _mm512_load_ps(sc), vdu = _mm512_load_ps(sc + W);
    __m512 y0 = _mm512_load_ps(sc + (J0 == 0 ? 2 : 3) * W), y1 = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = 0; j < 8; ++j) {
      const __m512 e = exp16(_mm512_mul_ps(vdt, _mm512_loadu_ps(At + (J0 + j) * W)));
      hv[j] = _mm512_fmadd_ps(e, hv[j], _mm512_mul_ps(vdu, _mm512_set1_ps(B[J0 + j])));
      if (j & 1) y1 = _mm512_fmadd_ps(_mm512_set1_ps(C[J0 + j]), hv[j], y1);
      else y0 = _mm512_fmadd_ps(_mm512_set1_ps(C[J0 + j]), hv[j], y0);
    }
    _mm512_store_ps(sc + 3 * W, _mm512_add_ps(y0, y1));
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) _mm512_storeu_ps(h + (J0 + j) * W, hv[j]);
}
K512 static void fwd_block16(const Args<float>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1,
                             const Consts<float>& k, float* __restrict h, float* __restrict sc, int64_t nt0, int64_t nc0) {
  const int64_t len = t1 - t0, row0 = b * a.L + t0, noff = (b * a.L + nt0) * a.d + nc0;
  prep16(a, b, c0, nc, t0, len, k, sc, false);
  Pf pf(a.d, nc0 < 0 ? 0 : std::min(a.K, a.L - nt0), false);   // the next block's inputs (y: written whole)
  pf.add(a.u, noff); pf.add(a.delta, noff); pf.add(a.z, noff);
  fwd_core16<0>(k.At.data(), a.B + row0 * 16, a.C + row0 * 16, sc, len, h, pf);
  fwd_core16<8>(k.At.data(), a.B + row0 * 16, a.C + row0 * 16, sc, len, h, pf);
  alignas(64) float pz[W];
  for (int64_t s = 0; s < len; ++s) {
    const int64_t off = (row0 + s) * a.d + c0;
    float* yv = sc + s * SC * W + 3 * W;
    if (a.z) {
      const __m512 z = _mm512_loadu_ps(lanes(a.z, off, nc, pz));
      _mm512_store_ps(yv, _mm512_mul_ps(_mm512_load_ps(yv), _mm512_mul_ps(z, sigmoid16<false>(z))));
    }
    std::memcpy(a.y + off, yv, nc * sizeof(float));
  }
}
// backward, up: from the checkpoint, the decays ea and the decayed states q = e h_{t-1} (len, n, W) for
// the walk down, dL/dC's lanes into gCv, and (GATE) the output <C, h> for dL/dz
template <bool GATE, int J0>
K512 __attribute__((noinline)) static void bwd_up16(const float* __restrict At, const float* __restrict B,
    const float* __restrict C, float* __restrict sc, int64_t len, const float* __restrict h0,
    float* __restrict qs, float* __restrict ea, float* __restrict gCv, const Pf& pf) {
  __m512 hv[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) hv[j] = _mm512_loadu_ps(h0 + (J0 + j) * W);
  for (int64_t s = 0; s < len; ++s, B += 16, C += 16, sc += SC * W, qs += 16 * W, ea += 16 * W, gCv += 16 * W) {
    if (J0 == 0) pf.at(s);
    const __m512 vdt = _mm512_load_ps(sc), vdu = _mm512_load_ps(sc + W), vgy = _mm512_load_ps(sc + 2 * W);
    __m512 y0 = GATE ? _mm512_load_ps(sc + 3 * W) : _mm512_setzero_ps(), y1 = _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int j = J0; j < J0 + 8; ++j) {
      const __m512 e = exp16(_mm512_mul_ps(vdt, _mm512_loadu_ps(At + j * W)));
      const __m512 q = _mm512_mul_ps(e, hv[j - J0]);
      _mm512_store_ps(qs + j * W, q); _mm512_store_ps(ea + j * W, e);
      hv[j - J0] = _mm512_fmadd_ps(vdu, _mm512_set1_ps(B[j]), q);
      _mm512_store_ps(gCv + j * W, _mm512_fmadd_ps(vgy, hv[j - J0], _mm512_load_ps(gCv + j * W)));
      if (GATE) {
        if (j & 1) y1 = _mm512_fmadd_ps(_mm512_set1_ps(C[j]), hv[j - J0], y1);
        else y0 = _mm512_fmadd_ps(_mm512_set1_ps(C[j]), hv[j - J0], y0);
      }
    }
    if (GATE) _mm512_store_ps(sc + 3 * W, _mm512_add_ps(y0, y1));
  }
}
// backward, down: g = dL/dh in registers walking back; dL/dB's lanes into gBv, gA (n, W) summed, and
// per step the sums over j of A_j a_j and B_j g_j into the scratch
template <int J0>
K512 __attribute__((noinline)) static void bwd_down16(const float* __restrict At, const float* __restrict B,
    const float* __restrict C, float* __restrict sc, int64_t len, float* __restrict g, float* __restrict gA,
    const float* __restrict qs, const float* __restrict ea, float* __restrict gBv, const Pf& pf) {
  __m512 gv[8], gAv[8];
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) { gv[j] = _mm512_loadu_ps(g + (J0 + j) * W); gAv[j] = _mm512_loadu_ps(gA + (J0 + j) * W); }
  for (int64_t s = len - 1; s >= 0; --s) {
    if (J0 == 0) pf.at(s);
    const float* Bt = B + s * 16; const float* Ct = C + s * 16; float* scs = sc + s * SC * W;
    const float* q = qs + s * 16 * W; const float* e = ea + s * 16 * W; float* gBs = gBv + s * 16 * W;
    const __m512 vdt = _mm512_load_ps(scs), vdu = _mm512_load_ps(scs + W), vgy = _mm512_load_ps(scs + 2 * W);
    __m512 sA = J0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(scs + 4 * W);
    __m512 sB = J0 == 0 ? _mm512_setzero_ps() : _mm512_load_ps(scs + 5 * W);
#pragma GCC unroll 8
    for (int j = J0; j < J0 + 8; ++j) {
      const __m512 gj = _mm512_fmadd_ps(vgy, _mm512_set1_ps(Ct[j]), gv[j - J0]);        // dL/dh_t
      _mm512_store_ps(gBs + j * W, _mm512_fmadd_ps(gj, vdu, _mm512_load_ps(gBs + j * W)));
      const __m512 ga = _mm512_mul_ps(gj, _mm512_load_ps(q + j * W));                   // a_t
      sA = _mm512_fmadd_ps(ga, _mm512_loadu_ps(At + j * W), sA);
      sB = _mm512_fmadd_ps(gj, _mm512_set1_ps(Bt[j]), sB);
      gAv[j - J0] = _mm512_fmadd_ps(ga, vdt, gAv[j - J0]);
      gv[j - J0] = _mm512_mul_ps(gj, _mm512_load_ps(e + j * W));                        // dL/dh_{t-1}
    }
    _mm512_store_ps(scs + 4 * W, sA); _mm512_store_ps(scs + 5 * W, sB);
  }
#pragma GCC unroll 8
  for (int j = 0; j < 8; ++j) { _mm512_storeu_ps(g + (J0 + j) * W, gv[j]); _mm512_storeu_ps(gA + (J0 + j) * W, gAv[j]); }
}
K512 static void bwd_block16(const Args<float>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1,
                             const Consts<float>& k, const float* h0, float* g, float* gA, float* gD, float* gb,
                             float* gBv, float* gCv, float* qs, float* ea, float* sc, int64_t nt0, int64_t nc0) {
  const int64_t len = t1 - t0, row0 = b * a.L + t0, noff = (b * a.L + nt0) * a.d + nc0;
  const float* At = k.At.data(); const float* Dv = k.D.data();
  const float *B = a.B + row0 * 16, *C = a.C + row0 * 16;
  const int64_t nlen = nc0 < 0 ? 0 : std::min(a.K, a.L - nt0);
  Pf pr(a.d, nlen, false), pw(a.d, nlen, true);   // the next block's inputs, and its outputs
  pr.add(a.u, noff); pr.add(a.delta, noff); pr.add(a.gy, noff); pr.add(a.z, noff);
  pw.add(a.gu, noff); pw.add(a.gdelta, noff); pw.add(a.gz, noff);
  prep16(a, b, c0, nc, t0, len, k, sc, true);
  alignas(64) float pu[W], o1[W], o2[W], ones[W];
  std::fill(ones, ones + W, 1.0f);
  if (a.z) {
    bwd_up16<true, 0>(At, B, C, sc, len, h0, qs, ea, gCv, pr); bwd_up16<true, 8>(At, B, C, sc, len, h0, qs, ea, gCv, pr);
    for (int64_t s = 0; s < len; ++s) {   // dL/dz = its factor from the prep times <C, h> + D u
      const float* yv = sc + s * SC * W + 3 * W; const float* f = yv + 4 * W;
#pragma omp simd
      for (int c = 0; c < W; ++c) o1[c] = f[c] * yv[c];
      std::memcpy(a.gz + (row0 + s) * a.d + c0, o1, nc * sizeof(float));
    }
  } else {
    bwd_up16<false, 0>(At, B, C, sc, len, h0, qs, ea, gCv, pr); bwd_up16<false, 8>(At, B, C, sc, len, h0, qs, ea, gCv, pr);
  }
  bwd_down16<0>(At, B, C, sc, len, g, gA, qs, ea, gBv, pw); bwd_down16<8>(At, B, C, sc, len, g, gA, qs, ea, gBv, pw);
  for (int64_t s = 0; s < len; ++s) {   // per step, lane-wise: dL/du, dL/ddelta, D's and the bias's sums
    const int64_t off = (row0 + s) * a.d + c0;
    const float* u = lanes(a.u, off, nc, pu);
    const float* dt = sc + s * SC * W; const float* gyp = dt + 2 * W; const float* sA = dt + 4 * W; const float* sB = dt + 5 * W;
    const float* sx = a.sp ? dt + 6 * W : ones;   // the softplus's derivative, or 1
#pragma omp simd
    for (int c = 0; c < W; ++c) {
      o1[c] = gyp[c] * Dv[c] + dt[c] * sB[c]; o2[c] = (sA[c] + u[c] * sB[c]) * sx[c];
      gD[c] += gyp[c] * u[c]; gb[c] += o2[c];
    }
    std::memcpy(a.gu + off, o1, nc * sizeof(float)); std::memcpy(a.gdelta + off, o2, nc * sizeof(float));
  }
}
// the drivers call these first: true when the register kernel took the block (fp32 and n == 16)
template <typename T> static inline bool fwd_fast(const Args<T>&, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  const Consts<T>&, T*, T*, int64_t, int64_t) { return false; }
template <typename T> static inline bool bwd_fast(const Args<T>&, int64_t, int64_t, int64_t, int64_t, int64_t, const Consts<T>&,
    const T*, T*, T*, T*, T*, T*, T*, T*, T*, T*, int64_t, int64_t) { return false; }
static inline bool fwd_fast(const Args<float>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1,
                            const Consts<float>& k, float* h, float* sc, int64_t nt0, int64_t nc0) {
  if (a.n != 16) return false;
  fwd_block16(a, b, c0, nc, t0, t1, k, h, sc, nt0, nc0); return true;
}
static inline bool bwd_fast(const Args<float>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1, const Consts<float>& k,
    const float* h0, float* g, float* gA, float* gD, float* gb, float* gBv, float* gCv, float* qs, float* ea, float* sc,
    int64_t nt0, int64_t nc0) {
  if (a.n != 16) return false;
  bwd_block16(a, b, c0, nc, t0, t1, k, h0, g, gA, gD, gb, gBv, gCv, qs, ea, sc, nt0, nc0); return true;
}
