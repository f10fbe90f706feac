// One copy of the fused selective scan and of the causal conv + SiLU, for the instruction set KERNEL_ISA:
// scan.cpp compiles this file three times (isa_copies.h). In order: the generic kernel's forward and backward
// for one block of W channels, the AVX-512 register kernel (fp32, n = 16) or its stand-in that declines every
// block, the drivers that split the work over threads, and the conv.
#include "vmath.h"

// the step sizes of one step's W lanes: delta + bias, through softplus when the scan asks for it (the forward and
// the backward's recomputation share it); the branch is outside the lane loop: a vectorised select would compute
// the softplus always
template <typename T>
static inline void step_sizes(const Args<T>& a, const T* __restrict de, const T* __restrict bias, T* __restrict dt) {
  if (a.sp) {
#pragma omp simd
    for (int c = 0; c < W; ++c) dt[c] = vsoftplus(de[c] + bias[c]);
  } else {
#pragma omp simd
    for (int c = 0; c < W; ++c) dt[c] = de[c] + bias[c];
  }
}

// ---- forward (generic kernel)
// forward of one block of W channels over steps [t0, t1) of batch element b; h (n, W) in and out
template <typename T>
void fwd_block(const Args<T>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1,
               const Consts<T>& k, T* __restrict h) {
  const int64_t n = a.n;
  alignas(64) T dt[W], du[W], yv[W], pu[W], pd[W], pz[W];
  const T* __restrict At = k.At.data(); const T* bias = k.bias.data(); const T* Dv = k.D.data();
  for (int64_t t = t0; t < t1; ++t) {
    const int64_t row = b * a.L + t, off = row * a.d + c0;
    const T* __restrict Bt = a.B + row * n; const T* __restrict Ct = a.C + row * n;
    const T* u = lanes(a.u, off, nc, pu);
    step_sizes(a, lanes(a.delta, off, nc, pd), bias, dt);
#pragma omp simd
    for (int c = 0; c < W; ++c) { du[c] = dt[c] * u[c]; yv[c] = Dv[c] * u[c]; }
    for (int64_t j = 0; j < n; ++j) {
      const T bj = Bt[j], cj = Ct[j]; T* __restrict hj = h + j * W; const T* __restrict Aj = At + j * W;
#pragma omp simd
      for (int c = 0; c < W; ++c) {
        const T hv = vexp(dt[c] * Aj[c]) * hj[c] + du[c] * bj;
        hj[c] = hv; yv[c] += cj * hv;
      }
    }
    if (a.z) {
      const T* z = lanes(a.z, off, nc, pz);
#pragma omp simd
      for (int c = 0; c < W; ++c) yv[c] *= z[c] * vsigmoid(z[c]);
    }
    for (int c = 0; c < nc; ++c) a.y[off + c] = yv[c];
  }
}

// ---- backward (generic kernel)
// backward through steps [t0, t1) of one block: recompute the states from the checkpoint h0 into
// hs (len + 1, n, W) and the decays into ea (len, n, W), then walk back. g (n, W) = dL/dh carried in
// and out; gA (n, W), gD, gb (W) are running sums; gBv, gCv (len, n, W) are this chunk's per-lane partial
// sums of dL/dB, dL/dC over the group's blocks (the driver sums the lanes once per chunk)
template <typename T>
void bwd_block(const Args<T>& a, int64_t b, int64_t c0, int64_t nc, int64_t t0, int64_t t1,
               const Consts<T>& k, const T* h0, T* __restrict g, T* __restrict gA, T* gD, T* gb,
               T* __restrict gBv, T* __restrict gCv, T* __restrict hs, T* __restrict ea, T* __restrict dts) {
  const int64_t n = a.n, nW = n * W, len = t1 - t0;
  const T* __restrict At = k.At.data(); const T* bias = k.bias.data(); const T* Dv = k.D.data();
  alignas(64) T du[W], pu[W], pd[W], pz[W], pg[W], gyp[W], sA[W], sB[W], yp[W], sg[W], go[W];
  std::memcpy(hs, h0, nW * sizeof(T));
  for (int64_t s = 0; s < len; ++s) {
    const int64_t row = b * a.L + t0 + s, off = row * a.d + c0;
    const T* __restrict Bt = a.B + row * n;
    const T* u = lanes(a.u, off, nc, pu);
    T* dt = dts + s * W;
    step_sizes(a, lanes(a.delta, off, nc, pd), bias, dt);
#pragma omp simd
    for (int c = 0; c < W; ++c) du[c] = dt[c] * u[c];
    for (int64_t j = 0; j < n; ++j) {
      const T bj = Bt[j]; const T* __restrict Aj = At + j * W;
      const T* __restrict hp = hs + s * nW + j * W; T* __restrict hn = hs + (s + 1) * nW + j * W;
      T* __restrict e = ea + s * nW + j * W;
#pragma omp simd
      for (int c = 0; c < W; ++c) { const T v = vexp(dt[c] * Aj[c]); e[c] = v; hn[c] = v * hp[c] + du[c] * bj; }
    }
  }
  for (int64_t s = len - 1; s >= 0; --s) {
    const int64_t row = b * a.L + t0 + s, off = row * a.d + c0;
    const T* __restrict Bt = a.B + row * n; const T* __restrict Ct = a.C + row * n;
    T* __restrict gBs = gBv + s * nW; T* __restrict gCs = gCv + s * nW;
    const T* u = lanes(a.u, off, nc, pu); const T* gy = lanes(a.gy, off, nc, pg);
    const T* dt = dts + s * W; const T* hc = hs + (s + 1) * nW; const T* hp = hs + s * nW; const T* e = ea + s * nW;
    if (a.z) {  // gate: needs the output before it, <C, h> + D u
      const T* z = lanes(a.z, off, nc, pz);
#pragma omp simd
      for (int c = 0; c < W; ++c) yp[c] = Dv[c] * u[c];
      for (int64_t j = 0; j < n; ++j) {
        const T cj = Ct[j];
#pragma omp simd
        for (int c = 0; c < W; ++c) yp[c] += cj * hc[j * W + c];
      }
#pragma omp simd
      for (int c = 0; c < W; ++c) {
        const T s1 = vsigmoid(z[c]);
        sg[c] = gy[c] * yp[c] * s1 * (T(1) + z[c] * (T(1) - s1));  // dL/dz
        gyp[c] = gy[c] * z[c] * s1;
      }
      for (int c = 0; c < nc; ++c) a.gz[off + c] = sg[c];
    } else {
      for (int c = 0; c < W; ++c) gyp[c] = gy[c];
    }
#pragma omp simd
    for (int c = 0; c < W; ++c) { du[c] = dt[c] * u[c]; sA[c] = 0; sB[c] = 0; }
    for (int64_t j = 0; j < n; ++j) {
      const T bj = Bt[j], cj = Ct[j]; const T* __restrict Aj = At + j * W;
      const T* __restrict hcj = hc + j * W; const T* __restrict hpj = hp + j * W; const T* __restrict ej = e + j * W;
      T* __restrict gj_ = g + j * W; T* __restrict gAj = gA + j * W;
      T* __restrict gBj = gBs + j * W; T* __restrict gCj = gCs + j * W;
#pragma omp simd
      for (int c = 0; c < W; ++c) {
        const T gj = gj_[c] + gyp[c] * cj;      // dL/dh_t
        gCj[c] += gyp[c] * hcj[c];              // lanes summed later: no horizontal sum per (t, j)
        gBj[c] += gj * du[c];
        const T ga = gj * hpj[c] * ej[c];       // dL/d(dt A) through the exp
        sA[c] += ga * Aj[c]; sB[c] += gj * bj;
        gAj[c] += ga * dt[c];
        gj_[c] = gj * ej[c];                    // dL/dh_{t-1}
      }
    }
    const T* de = lanes(a.delta, off, nc, pd);
#pragma omp simd
    for (int c = 0; c < W; ++c) {
      go[c] = gyp[c] * Dv[c] + dt[c] * sB[c];   // dL/du
      sg[c] = sA[c] + u[c] * sB[c]; gD[c] += gyp[c] * u[c];
    }
    if (a.sp) {
#pragma omp simd
      for (int c = 0; c < W; ++c) sg[c] *= vsigmoid(de[c] + bias[c]);
    }
#pragma omp simd
    for (int c = 0; c < W; ++c) gb[c] += sg[c];
    for (int c = 0; c < nc; ++c) { a.gu[off + c] = go[c]; a.gdelta[off + c] = sg[c]; }
  }
}

// ---- the register kernel: AVX-512, fp32, n = 16
#if KERNEL_ISA == 2
#include "scan_avx512.h"
#else
// the ISAs without the register kernel: the drivers' first offer is always declined
template <typename T> static inline bool fwd_fast(const Args<T>&, int64_t, int64_t, int64_t, int64_t, int64_t,
                                                  const Consts<T>&, T*, T*, int64_t, int64_t) { return false; }
template <typename T> static inline bool bwd_fast(const Args<T>&, int64_t, int64_t, int64_t, int64_t, int64_t, const Consts<T>&,
    const T*, T*, T*, T*, T*, T*, T*, T*, T*, T*, int64_t, int64_t) { return false; }
#endif

// ---- drivers
// work item = (batch element, group of blocks); enough groups that every thread has a few items
static inline int64_t n_groups(int64_t nb, int64_t nblk, int64_t per_thread) {
  const int64_t want = (per_thread * at::get_num_threads() + nb - 1) / nb;
  return std::max<int64_t>(1, std::min<int64_t>(nblk, want));
}
// items are handed out one at a time from an atomic counter, not split evenly up front: on a shared
// machine a thread that loses its core for a while then does fewer items instead of holding up the rest
static inline int64_t n_workers(int64_t items) { return std::min<int64_t>(items, at::get_num_threads()); }
// 64-byte aligned scratch: the register kernel loads and stores whole cache lines
template <typename T> struct Buf {
  std::vector<T> v; T* p;
  explicit Buf(int64_t m) : v(m + 64 / sizeof(T)) {
    p = reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
  }
};
// checkpoints: (b, nck, nblk, n, W), the state at the start of every chunk of K steps

template <typename T>
void fwd(const Args<T>& a) {
  const int64_t P = n_groups(a.nb, a.nblk, 4), bpg = (a.nblk + P - 1) / P, nW = a.n * W, items = a.nb * P;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, n_workers(items), 1, [&](int64_t, int64_t) {
    std::vector<T> h(bpg * nW); Buf<T> sc(a.K * SC * W);
    std::vector<Consts<T>> ks(bpg);
    for (int64_t i = next++; i < items; i = next++) {
      const int64_t b = i / P, q0 = (i % P) * bpg, q1 = std::min(a.nblk, q0 + bpg);
      if (q0 >= q1) continue;
      for (int64_t q = q0; q < q1; ++q) ks[q - q0].fill(a, q * W, std::min<int64_t>(W, a.d - q * W));
      std::fill(h.begin(), h.end(), T(0));
      for (int64_t t0 = 0, kk = 0; t0 < a.L; t0 += a.K, ++kk)   // tiles of time outside, blocks inside:
        for (int64_t q = q0; q < q1; ++q) {                       // a tile's B, C rows stay in cache
          T* hq = h.data() + (q - q0) * nW;
          if (a.ck) std::memcpy(a.ck + ((b * a.nck + kk) * a.nblk + q) * nW, hq, nW * sizeof(T));
          const int64_t nc = std::min<int64_t>(W, a.d - q * W), t1 = std::min(a.L, t0 + a.K);
          const int64_t nt0 = q + 1 < q1 ? t0 : t0 + a.K, nq = q + 1 < q1 ? q + 1 : q0;   // the next block
          if (!fwd_fast(a, b, q * W, nc, t0, t1, ks[q - q0], hq, sc.p, nt0, nt0 < a.L ? nq * W : -1))
            fwd_block(a, b, q * W, nc, t0, t1, ks[q - q0], hq);
        }
      if (a.last)
        for (int64_t q = q0; q < q1; ++q)
          for (int64_t c = 0; c < std::min<int64_t>(W, a.d - q * W); ++c)
            for (int64_t j = 0; j < a.n; ++j) a.last[(b * a.d + q * W + c) * a.n + j] = h[(q - q0) * nW + j * W + c];
    }
  });
}

template <typename T>
void bwd(const Args<T>& a, int64_t P, T* gBp, T* gCp) {
  const int64_t bpg = (a.nblk + P - 1) / P, bln = a.nb * a.L * a.n, n = a.n, nW = n * W, items = a.nb * P;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, n_workers(items), 1, [&](int64_t, int64_t) {
    std::vector<T> g(bpg * nW), gA(bpg * nW), gD(bpg * W), gb(bpg * W);
    Buf<T> hs((a.K + 1) * nW), ea(a.K * nW), sc(a.K * SC * W), gBv(a.K * nW), gCv(a.K * nW);
    std::vector<Consts<T>> ks(bpg);
    for (int64_t i = next++; i < items; i = next++) {
      const int64_t b = i / P, grp = i % P, q0 = grp * bpg, q1 = std::min(a.nblk, q0 + bpg);
      if (q0 >= q1) continue;
      std::fill(g.begin(), g.end(), T(0)); std::fill(gA.begin(), gA.end(), T(0));
      std::fill(gD.begin(), gD.end(), T(0)); std::fill(gb.begin(), gb.end(), T(0));
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t nc = std::min<int64_t>(W, a.d - q * W);
        ks[q - q0].fill(a, q * W, nc);
        if (a.glast)
          for (int64_t c = 0; c < nc; ++c)
            for (int64_t j = 0; j < n; ++j) g[(q - q0) * nW + j * W + c] = a.glast[(b * a.d + q * W + c) * n + j];
      }
      for (int64_t kk = a.nck - 1; kk >= 0; --kk) {   // chunks outside, blocks inside
        const int64_t t0 = kk * a.K, t1 = std::min(a.L, t0 + a.K), len = t1 - t0;
        std::fill(gBv.p, gBv.p + len * nW, T(0)); std::fill(gCv.p, gCv.p + len * nW, T(0));
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t o = q - q0, nc = std::min<int64_t>(W, a.d - q * W);
          const int64_t nt0 = q + 1 < q1 ? t0 : t0 - a.K, nq = q + 1 < q1 ? q + 1 : q0;   // the next block
          const T* h0 = a.ckpt + ((b * a.nck + kk) * a.nblk + q) * nW;
          if (!bwd_fast(a, b, q * W, nc, t0, t1, ks[o], h0, g.data() + o * nW, gA.data() + o * nW, gD.data() + o * W,
                        gb.data() + o * W, gBv.p, gCv.p, hs.p, ea.p, sc.p, nt0, nt0 >= 0 ? nq * W : -1))
            bwd_block(a, b, q * W, nc, t0, t1, ks[o], h0, g.data() + o * nW, gA.data() + o * nW,
                      gD.data() + o * W, gb.data() + o * W, gBv.p, gCv.p, hs.p, ea.p, sc.p);
        }
        T* pB = gBp + grp * bln + (b * a.L + t0) * n; T* pC = gCp + grp * bln + (b * a.L + t0) * n;
        for (int64_t r = 0; r < len * n; ++r) {   // one sum over the lanes per (step, j) and chunk
          T tb = 0, tc = 0;
          for (int c = 0; c < W; ++c) { tb += gBv.p[r * W + c]; tc += gCv.p[r * W + c]; }
          pB[r] += tb; pC[r] += tc;
        }
      }
      for (int64_t q = q0; q < q1; ++q) {   // per-batch partials: no two items share (b, channel)
        const int64_t o = q - q0;
        for (int64_t c = 0; c < std::min<int64_t>(W, a.d - q * W); ++c) {
          const int64_t ch = q * W + c;
          for (int64_t j = 0; j < n; ++j) a.gA[(b * a.d + ch) * n + j] = gA[o * nW + j * W + c];
          a.gD[b * a.d + ch] = gD[o * W + c]; a.gbias[b * a.d + ch] = gb[o * W + c];
        }
      }
    }
  });
}

// ---- the causal conv + SiLU
// causal depthwise conv1d + SiLU, channels last: u[b, t, c] = silu(bias[c] + sum_i w[c, i] x[b, t - k + 1 + i, c]).
// x rows may be strided (a view into in_proj's output); wt is w transposed to (k, d). Work item =
// (batch element, chunk of CW channels), walking time; vectorised over the chunk's channels.
template <typename T>
static inline void conv_pre(const ConvArgs<T>& a, int64_t b, int64_t t, int64_t c0, int64_t cw, T* acc) {
#pragma omp simd
  for (int64_t c = 0; c < cw; ++c) acc[c] = a.bias ? a.bias[c0 + c] : T(0);
  for (int64_t i = std::max<int64_t>(0, a.k - 1 - t); i < a.k; ++i) {
    const T* xr = a.x + b * a.sb + (t - a.k + 1 + i) * a.st + c0; const T* wr = a.wt + i * a.d + c0;
#pragma omp simd
    for (int64_t c = 0; c < cw; ++c) acc[c] += wr[c] * xr[c];
  }
}
template <typename T>
void conv_fwd(const ConvArgs<T>& a) {
  const int64_t nch = (a.d + CW - 1) / CW;
  at::parallel_for(0, a.nb * nch, 1, [&](int64_t i0, int64_t i1) {
    alignas(64) T acc[CW];
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / nch, c0 = (i % nch) * CW, cw = std::min(CW, a.d - c0);
      for (int64_t t = 0; t < a.L; ++t) {
        conv_pre(a, b, t, c0, cw, acc);
        T* ur = a.u + (b * a.L + t) * a.d + c0;
#pragma omp simd
        for (int64_t c = 0; c < cw; ++c) ur[c] = acc[c] * vsigmoid(acc[c]);
      }
    }
  });
}
// backward, walking time down: g = dL/d(pre-activation) of the last k rows kept in a ring;
// gx[t] = sum_i w[i] g[t + k - 1 - i]; gw, gb are per-batch partials (nb, k, d), (nb, d)
template <typename T>
void conv_bwd(const ConvArgs<T>& a) {
  const int64_t nch = (a.d + CW - 1) / CW, k = a.k;
  at::parallel_for(0, a.nb * nch, 1, [&](int64_t i0, int64_t i1) {
    alignas(64) T acc[CW], gx[CW];
    std::vector<T> ring(k * CW), gw(k * CW), gb(CW);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / nch, c0 = (i % nch) * CW, cw = std::min(CW, a.d - c0);
      std::fill(gw.begin(), gw.end(), T(0)); std::fill(gb.begin(), gb.end(), T(0));
      for (int64_t t = a.L - 1; t >= 0; --t) {
        conv_pre(a, b, t, c0, cw, acc);
        const T* gur = a.gu + (b * a.L + t) * a.d + c0; T* g = ring.data() + (t % k) * CW;
#pragma omp simd
        for (int64_t c = 0; c < cw; ++c) {
          const T s = vsigmoid(acc[c]);
          g[c] = gur[c] * s * (T(1) + acc[c] * (T(1) - s)); gb[c] += g[c];
        }
        for (int64_t j = std::max<int64_t>(0, k - 1 - t); j < k; ++j) {
          const T* xr = a.x + b * a.sb + (t - k + 1 + j) * a.st + c0; T* gwj = gw.data() + j * CW;
#pragma omp simd
          for (int64_t c = 0; c < cw; ++c) gwj[c] += g[c] * xr[c];
        }
#pragma omp simd
        for (int64_t c = 0; c < cw; ++c) gx[c] = T(0);
        for (int64_t j = 0; j < k; ++j) {   // row t feeds outputs t .. t + k - 1 through tap k - 1 - (s - t)
          const int64_t s = t + k - 1 - j;
          if (s >= a.L) continue;
          const T* gs = ring.data() + (s % k) * CW; const T* wr = a.wt + j * a.d + c0;
#pragma omp simd
          for (int64_t c = 0; c < cw; ++c) gx[c] += wr[c] * gs[c];
        }
        std::memcpy(a.gx + (b * a.L + t) * a.d + c0, gx, cw * sizeof(T));
      }
      for (int64_t j = 0; j < k; ++j) std::memcpy(a.gw + (b * k + j) * a.d + c0, gw.data() + j * CW, cw * sizeof(T));
      std::memcpy(a.gb + b * a.d + c0, gb.data(), cw * sizeof(T));
    }
  });
}
