// The fused selective scan's and the causal conv's arguments, and what every copy of their kernels
// (scan_kernel.h, one per instruction set) shares: the block width, a block's constants, a block's lanes.
#pragma once
#include "common.h"

template <typename T> struct Args {
  const T *u, *delta, *A, *B, *C, *D, *z, *bias, *glast, *gy, *ckpt;
  T *y, *last, *ck, *gu, *gdelta, *gz, *gA, *gD, *gbias;
  int64_t nb, L, d, n, K, nck, nblk; bool sp;
};
// the causal conv's arguments (below): x rows strided, channels contiguous; CW channels per work item
constexpr int64_t CW = 64;
template <typename T> struct ConvArgs {
  const T *x, *wt, *bias, *gu; T *u, *gx, *gw, *gb; int64_t nb, L, d, k, sb, st;
};
constexpr int W = 16;  // channels per block: one AVX-512 register of fp32, two of AVX2
constexpr int SC = 8;  // lane vectors per step in the register kernel's scratch (below)

// a block's per-channel constants, padded with zeros past the last channel: A transposed to
// (n, W) so that the inner loops run over channels, and bias, D
template <typename T> struct Consts {
  std::vector<T> At, bias, D;
  void fill(const Args<T>& a, int64_t c0, int64_t nc) {
    At.assign(a.n * W, T(0)); bias.assign(W, T(0)); D.assign(W, T(0));
    for (int64_t c = 0; c < nc; ++c) {
      for (int64_t j = 0; j < a.n; ++j) At[j * W + c] = a.A[(c0 + c) * a.n + j];
      if (a.bias) bias[c] = a.bias[c0 + c];
      if (a.D) D[c] = a.D[c0 + c];
    }
  }
};
// W values of row-major (b, l, d) tensor x at (row, c0..): a pointer into x, or a zero-padded copy
template <typename T> static inline const T* lanes(const T* x, int64_t off, int64_t nc, T* pad) {
  if (!x) return nullptr;
  if (nc == W) return x + off;
  for (int c = 0; c < W; ++c) pad[c] = c < nc ? x[off + c] : T(0);
  return pad;
}
