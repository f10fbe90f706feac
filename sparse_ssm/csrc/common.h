// What every kernel file of sparse_ssm includes: the headers, and the one decision of which instruction set
// runs. The copies it chooses between are compiled by isa_copies.h.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SPARSE_X86 1
#endif

// The level of this CPU: 2 AVX-512 (F, DQ, BW and VL, every AVX-512 feature a kernel here is compiled for),
// 1 AVX2 + FMA, 0 the baseline ISA. Read once, at the first call.
inline int cpu_isa() {
#ifdef SPARSE_X86
  static const int lvl = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") ? 2
                       : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0);
  return lvl;
#else
  return 0;
#endif
}
// The level every kernel runs at: this CPU's, lowered by isa_cap, so that a newer CPU can run (and test) the
// copies for older ones. One variable for the whole extension (an inline variable: one across files).
inline int isa_cap_level = 2;
inline int isa_level() { return std::min(cpu_isa(), isa_cap_level); }
inline int64_t isa_cap(int64_t cap) { isa_cap_level = static_cast<int>(cap); return isa_level(); }  // the level now in use

// Run `call` from the copy of a kernel (isa_copies.h) for the level in use.
#define ISA_DISPATCH(call) \
  switch (isa_level()) { case 2: k_avx512::call; break; case 1: k_avx2::call; break; default: k_base::call; }
