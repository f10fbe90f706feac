// Compile one kernel (the file named by ISA_BODY) three times: for the baseline ISA in namespace k_base, for
// AVX2 + FMA in k_avx2 and for AVX-512 in k_avx512; ISA_DISPATCH (common.h) picks one at run time. Inside a
// copy, KERNEL_ISA is its level (0, 1, 2). We compile with -O3 and no -march=native (a cached build must run on
// whatever CPU later loads it), so the targets are set here, per copy. Use:
//     #define ISA_BODY "scan_kernel.h"
//     #include "isa_copies.h"
// No include guard: each file that compiles a kernel includes it once, after common.h.
#ifndef ISA_BODY
#error "define ISA_BODY, the file to compile once per instruction set, before including isa_copies.h"
#endif

#define KERNEL_ISA 0
namespace k_base {
#include ISA_BODY
}  // namespace k_base
#undef KERNEL_ISA

#ifdef SPARSE_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define KERNEL_ISA 1
namespace k_avx2 {
#include ISA_BODY
}  // namespace k_avx2
#undef KERNEL_ISA
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx2,fma,prefer-vector-width=512")
#define KERNEL_ISA 2
namespace k_avx512 {
#include ISA_BODY
}  // namespace k_avx512
#undef KERNEL_ISA
#pragma GCC pop_options
#else
namespace k_avx2 = k_base;
namespace k_avx512 = k_base;
#endif
#undef ISA_BODY
