// The entry points of the one extension, as bind.cpp exposes them to Python. Tensors in, tensors out; an empty
// tensor stands for an argument that is not given.
#pragma once
#include <ATen/ATen.h>
#include <vector>

// (the instruction set: isa_level() and isa_cap(), common.h)

// the fused selective scan and the causal conv + SiLU (scan.cpp, chapter 05a)
std::vector<at::Tensor> scan_fwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                 at::Tensor D, at::Tensor z, at::Tensor bias, bool sp, bool save, int64_t K);
std::vector<at::Tensor> scan_bwd(at::Tensor u, at::Tensor delta, at::Tensor A, at::Tensor B, at::Tensor C,
                                 at::Tensor D, at::Tensor z, at::Tensor bias, bool sp, at::Tensor ck,
                                 at::Tensor gy, at::Tensor glast, int64_t K);
at::Tensor conv_silu_fwd(at::Tensor x, at::Tensor wt, at::Tensor bias);
std::vector<at::Tensor> conv_silu_bwd(at::Tensor x, at::Tensor wt, at::Tensor bias, at::Tensor gu);

// the sparse products (sparse.cpp, chapter 06b)
at::Tensor csr16_mm(at::Tensor rowptr, at::Tensor cols, at::Tensor vals, at::Tensor x, int64_t out, int64_t in, int64_t isa);
at::Tensor bitmask_mm(at::Tensor rowptr, at::Tensor bits, at::Tensor vals, at::Tensor x, int64_t out, int64_t in, int64_t isa);

// the fused decoding steps (decode.cpp, chapter 18a; decode2.cpp, 18b; decode3.cpp, 18c), one signature for every
// architecture: one step's logits (n = 0) or n chosen tokens, fed back without returning to Python (decode_driver.h)
#define DECODE_ARGS at::Tensor ids, int64_t n, std::vector<at::Tensor> emb_t, std::vector<int64_t> emb_m, \
    std::vector<at::Tensor> ts, std::vector<int64_t> ms, at::Tensor norm_f, std::vector<at::Tensor> head_t, \
    std::vector<int64_t> head_m, double eps, int64_t threads, std::vector<int64_t> si, std::vector<double> sd, at::Tensor seen
at::Tensor mamba_decode(DECODE_ARGS);
at::Tensor mamba2_decode(DECODE_ARGS);
at::Tensor mamba3_decode(DECODE_ARGS);
