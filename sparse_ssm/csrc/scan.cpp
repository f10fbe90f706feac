// The fused selective scan and the causal conv + SiLU on CPU tensors: scan_kernel.h compiled once per
// instruction set, and the entry points that turn tensors into pointers (an empty tensor means "not given")
// and run the copy for the level in use (ISA_DISPATCH, common.h).
#include "common.h"
#include "kernels.h"
#include "scan.h"

#define ISA_BODY "scan_kernel.h"
#include "isa_copies.h"

template <typename T> static const T* opt(const at::Tensor& x) { return x.numel() ? x.data_ptr<T>() : nullptr; }

template <typename T>
static Args<T> inputs(const at::Tensor& u, const at::Tensor& delta, const at::Tensor& A, const at::Tensor& B,
                      const at::Tensor& C, const at::Tensor& D, const at::Tensor& z, const at::Tensor& bias,
                      bool sp, int64_t K) {
  Args<T> a{};
  a.u = u.data_ptr<T>(); a.delta = delta.data_ptr<T>(); a.A = A.data_ptr<T>();
  a.B = B.data_ptr<T>(); a.C = C.data_ptr<T>(); a.D = opt<T>(D); a.z = opt<T>(z); a.bias = opt<T>(bias);
  a.nb = u.size(0); a.L = u.size(1); a.d = u.size(2); a.n = A.size(1); a.K = K;
  a.nck = (a.L + K - 1) / K; a.nblk = (a.d + W - 1) / W; a.sp = sp;
  return a;
}

std::vector<at::Tensor> scan_fwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                 at::Tensor D, at::Tensor z, at::Tensor bias, bool sp, bool save, int64_t K) {
  const int64_t nb = u.size(0), L = u.size(1), d = u.size(2), n = A.size(1), nck = (L + K - 1) / K;
  auto y = at::empty_like(u), last = at::empty({nb, d, n}, u.options());
  auto ck = save ? at::empty({nb, nck, (d + W - 1) / W, n, W}, u.options()) : at::empty({0}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_fwd", [&] {
    auto a = inputs<scalar_t>(u, delta, A, B, C, D, z, bias, sp, K);
    a.y = y.data_ptr<scalar_t>(); a.last = last.data_ptr<scalar_t>(); a.ck = save ? ck.data_ptr<scalar_t>() : nullptr;
    ISA_DISPATCH(fwd(a))
  });
  return {y, last, ck};
}

std::vector<at::Tensor> scan_bwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                 at::Tensor D, at::Tensor z, at::Tensor bias, bool sp, at::Tensor ck,
                                 at::Tensor gy, at::Tensor glast, int64_t K) {
  const int64_t nb = u.size(0), L = u.size(1), d = u.size(2), n = A.size(1), nblk = (d + W - 1) / W;
  const int64_t nt = at::get_num_threads();
  const int64_t P = std::max<int64_t>(1, std::min<int64_t>(nblk, (4 * nt + nb - 1) / nb));  // channel groups
  auto gu = at::empty_like(u), gdelta = at::empty_like(u), gz = at::empty_like(z);
  auto gA = at::empty({nb, d, n}, u.options()), gD = at::empty({nb, d}, u.options());
  auto gbias = at::empty({nb, d}, u.options());
  auto gBp = at::zeros({P, nb, L, n}, u.options()), gCp = at::zeros({P, nb, L, n}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_bwd", [&] {
    auto a = inputs<scalar_t>(u, delta, A, B, C, D, z, bias, sp, K);
    a.ckpt = ck.data_ptr<scalar_t>(); a.gy = gy.data_ptr<scalar_t>(); a.glast = opt<scalar_t>(glast);
    a.gu = gu.data_ptr<scalar_t>(); a.gdelta = gdelta.data_ptr<scalar_t>();
    a.gz = z.numel() ? gz.data_ptr<scalar_t>() : nullptr;
    a.gA = gA.data_ptr<scalar_t>(); a.gD = gD.data_ptr<scalar_t>(); a.gbias = gbias.data_ptr<scalar_t>();
    auto pB = gBp.data_ptr<scalar_t>(), pC = gCp.data_ptr<scalar_t>();
    ISA_DISPATCH(bwd(a, P, pB, pC))
  });
  auto sum0 = [](const at::Tensor& t) { return t.size(0) == 1 ? t[0] : t.sum(0); };
  return {gu, gdelta, sum0(gA), sum0(gBp), sum0(gCp), sum0(gD), gz, sum0(gbias)};
}

template <typename T>
static ConvArgs<T> conv_inputs(const at::Tensor& x, const at::Tensor& wt, const at::Tensor& bias) {
  ConvArgs<T> a{};
  a.x = x.data_ptr<T>(); a.wt = wt.data_ptr<T>(); a.bias = opt<T>(bias);
  a.nb = x.size(0); a.L = x.size(1); a.d = x.size(2); a.k = wt.size(0); a.sb = x.stride(0); a.st = x.stride(1);
  return a;
}
// x (b, l, d) with unit channel stride; wt (k, d) contiguous; bias (d,) or empty
at::Tensor conv_silu_fwd(at::Tensor x, at::Tensor wt, at::Tensor bias) {
  TORCH_CHECK(x.stride(2) == 1, "conv_silu_fwd: x needs unit stride over channels");
  auto u = at::empty({x.size(0), x.size(1), x.size(2)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_fwd", [&] {
    auto a = conv_inputs<scalar_t>(x, wt, bias); a.u = u.data_ptr<scalar_t>();
    ISA_DISPATCH(conv_fwd(a))
  });
  return u;
}
// returns dL/dx (b, l, d), dL/dwt (k, d), dL/dbias (d,)
std::vector<at::Tensor> conv_silu_bwd(at::Tensor x, at::Tensor wt, at::Tensor bias, at::Tensor gu) {
  TORCH_CHECK(x.stride(2) == 1 && gu.is_contiguous(), "conv_silu_bwd: x needs unit channel stride, gu contiguous");
  const int64_t nb = x.size(0), d = x.size(2), k = wt.size(0);
  auto gx = at::empty({nb, x.size(1), d}, x.options());
  auto gw = at::empty({nb, k, d}, x.options()), gb = at::empty({nb, d}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_bwd", [&] {
    auto a = conv_inputs<scalar_t>(x, wt, bias); a.gu = gu.data_ptr<scalar_t>();
    a.gx = gx.data_ptr<scalar_t>(); a.gw = gw.data_ptr<scalar_t>(); a.gb = gb.data_ptr<scalar_t>();
    ISA_DISPATCH(conv_bwd(a))
  });
  return {gx, gw.sum(0), gb.sum(0)};
}
