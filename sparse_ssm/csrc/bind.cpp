// The one Python module of sparse_ssm's C++ kernels: the scan and the conv (chapter 05a), the sparse products
// (chapter 06b), the decoding steps (chapters 18a-18c), and the instruction set they all run at. Errors raised in C++
// (TORCH_CHECK) reach Python as RuntimeError, as torch's own bindings do.
#include <torch/python.h>
#include "common.h"
#include "kernels.h"
#include "decode.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("isa_level", torch::wrap_pybind_function(isa_level), "the instruction set in use: 2 AVX-512, 1 AVX2+FMA, 0 baseline");
  m.def("isa_cap", torch::wrap_pybind_function(isa_cap), "lower the instruction set of every kernel to at most `cap`; the level now in use");
  m.def("scan_fwd", torch::wrap_pybind_function(scan_fwd), "the fused selective scan: y, the last state, the checkpoints");
  m.def("scan_bwd", torch::wrap_pybind_function(scan_bwd), "its backward, recomputing from the checkpoints");
  m.def("conv_silu_fwd", torch::wrap_pybind_function(conv_silu_fwd), "silu(causal depthwise conv1d), channels last");
  m.def("conv_silu_bwd", torch::wrap_pybind_function(conv_silu_bwd), "its backward: dx, dw, dbias");
  m.def("csr16_mm", torch::wrap_pybind_function(csr16_mm), "x @ W^T for W in CSR16");
  m.def("bitmask_mm", torch::wrap_pybind_function(bitmask_mm), "x @ W^T for W as values + bitmask");
  m.def("int_dot", torch::wrap_pybind_function(int_dot), "quantized products: 1 VNNI int8 dot products where the CPU has them, 0 fp32 (-1: unchanged); 1 if in use");
  m.def("mamba_decode", torch::wrap_pybind_function(mamba_decode), "one decoding step of a MambaLM, or n chosen tokens");
  m.def("mamba2_decode", torch::wrap_pybind_function(mamba2_decode), "one decoding step of a Mamba2LM, or n chosen tokens");
  m.def("mamba3_decode", torch::wrap_pybind_function(mamba3_decode), "one decoding step of a Mamba3LM, or n chosen tokens");
}
