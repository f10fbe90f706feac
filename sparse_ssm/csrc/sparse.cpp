// The sparse products y (nb, out) = x (nb, in) @ W^T for a pruned W held as CSR16 or values + bitmask
// (chapter 06b), with the row kernels of sparse_rows.h at the highest level that both the caller (`isa`)
// and isa_level() allow.
#include "common.h"
#include "kernels.h"
#include "sparse_rows.h"

static void check_x(const at::Tensor& x, int64_t in) {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == in && x.scalar_type() == at::kFloat && x.is_contiguous(), "x must be a contiguous (nb, in) float32 tensor");
}

// run `rows<NB>` over groups of up to four batch rows
#define BATCH_GROUPS(CALL) \
  for (int64_t b0 = 0; b0 < nb; b0 += 4) { \
    const int64_t g = std::min<int64_t>(4, nb - b0); \
    at::parallel_for(0, out, 128, [&](int64_t r0, int64_t r1) { \
      if (g == 1) CALL(1); else if (g == 2) CALL(2); else if (g == 3) CALL(3); else CALL(4); }); }

at::Tensor csr16_mm(at::Tensor rowptr, at::Tensor cols, at::Tensor vals, at::Tensor x, int64_t out, int64_t in, int64_t isa) {
  check_x(x, in); const int64_t nb = x.size(0);
  auto y = at::empty({nb, out}, x.options());
  const int32_t* rp = rowptr.data_ptr<int32_t>(); const uint16_t* c = reinterpret_cast<const uint16_t*>(cols.data_ptr<int16_t>());
  const float* v = vals.data_ptr<float>(); const float* xp = x.data_ptr<float>(); float* yp = y.data_ptr<float>();
  const int lvl = std::min<int64_t>(isa, isa_level()); const bool avx = lvl >= 1, avx512 = lvl >= 2;
#ifdef SPARSE_X86
#define CSR(N) (avx512 && N == 1 ? csr_rows_avx512(rp, c, v, xp + b0 * in, yp + b0 * out, r0, r1) : avx ? csr_rows_avx2<N>(rp, c, v, xp + b0 * in, in, yp + b0 * out, out, r0, r1) : csr_rows<N>(rp, c, v, xp + b0 * in, in, yp + b0 * out, out, r0, r1))
#else
#define CSR(N) csr_rows<N>(rp, c, v, xp + b0 * in, in, yp + b0 * out, out, r0, r1)
#endif
  BATCH_GROUPS(CSR)
  return y;
}

at::Tensor bitmask_mm(at::Tensor rowptr, at::Tensor bits, at::Tensor vals, at::Tensor x, int64_t out, int64_t in, int64_t isa) {
  check_x(x, in); const int64_t nb = x.size(0), W64 = bits.size(1);
  auto y = at::empty({nb, out}, x.options());
  auto xpad = at::zeros({nb, W64 * 64}, x.options());             // whole words of input, zeros past `in`
  xpad.narrow(1, 0, in).copy_(x);
  const int32_t* rp = rowptr.data_ptr<int32_t>(); const uint64_t* m = reinterpret_cast<const uint64_t*>(bits.data_ptr<int64_t>());
  const float* v = vals.data_ptr<float>(); const float* xp = xpad.data_ptr<float>(); float* yp = y.data_ptr<float>();
  const int64_t inp = W64 * 64; const bool avx = std::min<int64_t>(isa, isa_level()) >= 2;
#ifdef SPARSE_X86
#define BMK(N) (avx ? bitmask_rows_avx512<N>(rp, m, W64, v, xp + b0 * inp, yp + b0 * out, out, r0, r1) : bitmask_rows<N>(rp, m, W64, v, xp + b0 * inp, yp + b0 * out, out, r0, r1))
#else
#define BMK(N) bitmask_rows<N>(rp, m, W64, v, xp + b0 * inp, yp + b0 * out, out, r0, r1)
#endif
  BATCH_GROUPS(BMK)
  return y;
}
