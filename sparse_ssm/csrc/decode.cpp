// One decoding step of a whole MambaLM in one call (chapter 18a): decode_step.h compiled once per instruction
// set, and the entry points that read the flat argument lists and run the copy for the level in use.
#include "common.h"
#include "kernels.h"
#include "decode.h"

#define ISA_BODY "decode_step.h"
#include "isa_copies.h"

static const float* fptr(const at::Tensor& t, const char* what) {
  if (!t.numel()) return nullptr;
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(), what, " must be a contiguous float32 CPU tensor");
  return t.data_ptr<float>();
}
static Lin to_lin(const at::Tensor* t, const int64_t* m) {   // t: values or weight, rowptr, cols or bits, bias; m: kind, out, in
  Lin L{}; L.kind = (int)m[0]; L.out = m[1]; L.in = m[2]; L.W64 = (L.in + 63) / 64;
  const float* a = fptr(t[0], "a weight");
  if (L.kind == 0) { TORCH_CHECK(t[0].numel() >= L.out * L.in, "dense weight too small"); L.w = a; }
  else { L.vals = a; L.rp = t[1].data_ptr<int32_t>(); }
  if (L.kind == 1) L.cols = reinterpret_cast<const uint16_t*>(t[2].data_ptr<int16_t>());
  if (L.kind == 2) { L.bits = reinterpret_cast<const uint64_t*>(t[2].data_ptr<int64_t>()); L.W64 = t[2].size(1); }
  L.bias = fptr(t[3], "a bias");
  return L;
}
constexpr int LT = 23, LM = 16;   // tensors and integers per layer (see `layer_args` in Python)

// Everything a step needs, read once from the flat argument lists: the layers, the head, the scratch sizes
struct Model {
  std::vector<Layer> layers; Lin head{}; Scratch s{}; int64_t dm = 0, work = 0; const float* emb = nullptr; const float* norm_f = nullptr;
};
static Model read_model(int64_t nb, const at::Tensor& emb, const std::vector<at::Tensor>& ts, const std::vector<int64_t>& ms,
                        const at::Tensor& norm_f, const std::vector<at::Tensor>& head_t, const std::vector<int64_t>& head_m) {
  Model M; const int64_t nl = (int64_t)ts.size() / LT; M.dm = emb.size(1);
  TORCH_CHECK((int64_t)ts.size() == nl * LT && (int64_t)ms.size() == nl * LM, "mamba_step: malformed layer arguments");
  M.layers.resize(nl);
  int64_t dmax = 1, nxmax = 1, pad = M.dm;
  for (int64_t i = 0; i < nl; ++i) {
    const at::Tensor* t = ts.data() + i * LT; const int64_t* m = ms.data() + i * LM; Layer& L = M.layers[i];
    L.d = m[0]; L.n = m[1]; L.r = m[2]; L.k = m[3];
    L.norm_w = fptr(t[0], "norm weight"); L.conv_w = fptr(t[1], "conv weight"); L.conv_b = fptr(t[2], "conv bias");
    L.A_log = fptr(t[3], "A_log"); L.D = fptr(t[4], "D");
    TORCH_CHECK(t[5].numel() == nb * L.d * L.k && t[6].numel() == nb * L.d * L.n, "cache states do not match the batch and widths");
    L.conv_state = const_cast<float*>(fptr(t[5], "conv state")); L.ssm_state = const_cast<float*>(fptr(t[6], "ssm state"));
    L.in_proj = to_lin(t + 7, m + 4); L.x_proj = to_lin(t + 11, m + 7); L.dt_proj = to_lin(t + 15, m + 10); L.out_proj = to_lin(t + 19, m + 13);
    dmax = std::max(dmax, L.d); nxmax = std::max(nxmax, L.r + 2 * L.n);
    for (const Lin* q : {&L.in_proj, &L.x_proj, &L.dt_proj, &L.out_proj}) { pad = std::max(pad, q->W64 * 64); M.work += q->out * q->in; }
  }
  M.head = to_lin(head_t.data(), head_m.data()); pad = std::max(pad, M.head.W64 * 64); M.work += M.head.out * M.head.in;
  M.s.nb = nb; M.s.dm = M.dm; M.s.dmax = dmax; M.s.nxmax = nxmax; M.s.pad = pad;
  TORCH_CHECK(emb.scalar_type() == at::kFloat && emb.is_contiguous(), "the embedding must be contiguous float32");
  M.emb = emb.data_ptr<float>(); M.norm_f = fptr(norm_f, "final norm weight");
  return M;
}
// one step for the ids `id` (rows of the embedding copied into x), logits (nb, head.out) written to lp
static void run_step(const Model& M, const int64_t* id, float* x, float* lp, float eps, std::vector<float>& shared,
                     std::vector<float>& priv, int64_t per, int nt) {
  const int64_t nb = M.s.nb, dm = M.dm;
  for (int64_t b = 0; b < nb; ++b) std::copy(M.emb + id[b] * dm, M.emb + (id[b] + 1) * dm, x + b * dm);
  Scratch s = M.s; s.xz = shared.data(); s.u = s.xz + nb * 2 * s.dmax; s.y = s.u + nb * s.dmax;
  ISA_DISPATCH(model_step(M.layers, x, nb, dm, eps, M.norm_f, M.head, lp, M.head.out, s, priv, per, nt))
}
static bool ids_ok(const at::Tensor& ids, int64_t vocab) {
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.is_contiguous() && ids.dim() == 1, "ids must be a contiguous 1-d int64 tensor");
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < ids.size(0); ++b) if (id[b] < 0 || id[b] >= vocab) return false;
  return true;
}
static int team_size(const Model& M, int64_t threads) {
  return (int)std::max<int64_t>(1, M.work * M.s.nb < (1 << 21) ? 1 : (threads > 0 ? threads : at::get_num_threads()));
}

// logits (nb, vocab) of one decoding step, every layer's conv and SSM state updated in place; None (nothing
// changed) when an id is outside [0, vocab)
at::Tensor mamba_step(at::Tensor ids, at::Tensor emb, std::vector<at::Tensor> ts, std::vector<int64_t> ms,
                      at::Tensor norm_f, std::vector<at::Tensor> head_t, std::vector<int64_t> head_m, double eps, int64_t vocab, int64_t threads) {
  const int64_t nb = ids.size(0);
  const Model M = read_model(nb, emb, ts, ms, norm_f, head_t, head_m);
  if (!ids_ok(ids, vocab)) return at::Tensor();                            // None: the caller's check names the bad id
  auto logits = at::empty({nb, M.head.out}, emb.options());
  std::vector<float> x(nb * M.dm), shared(nb * 4 * M.s.dmax + 16);
  const int nt = team_size(M, threads); const int64_t per = Priv::size(M.s);
  std::vector<float> priv(per * nt);
  run_step(M, ids.data_ptr<int64_t>(), x.data(), logits.data_ptr<float>(), (float)eps, shared, priv, per, nt);
  return logits;
}

// n greedy steps: step t's input is the argmax of step t-1's logits over ids [0, limit) (the first input is
// `ids`); returns the n chosen ids (nb, n), the states advanced n steps; None (nothing changed) for a bad id
at::Tensor mamba_greedy(at::Tensor ids, int64_t n, int64_t limit, at::Tensor emb, std::vector<at::Tensor> ts, std::vector<int64_t> ms,
                        at::Tensor norm_f, std::vector<at::Tensor> head_t, std::vector<int64_t> head_m, double eps, int64_t vocab, int64_t threads) {
  const int64_t nb = ids.size(0);
  const Model M = read_model(nb, emb, ts, ms, norm_f, head_t, head_m);
  TORCH_CHECK(n >= 1 && limit >= 1 && limit <= M.head.out, "mamba_greedy: n >= 1 and 1 <= limit <= the head's rows");
  if (!ids_ok(ids, vocab)) return at::Tensor();
  auto out = at::empty({nb, n}, ids.options());
  std::vector<float> x(nb * M.dm), shared(nb * 4 * M.s.dmax + 16), lg(nb * M.head.out);
  std::vector<int64_t> cur(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + nb);
  const int nt = team_size(M, threads); const int64_t per = Priv::size(M.s);
  std::vector<float> priv(per * nt);
  int64_t* o = out.data_ptr<int64_t>();
  for (int64_t t = 0; t < n; ++t) {
    run_step(M, cur.data(), x.data(), lg.data(), (float)eps, shared, priv, per, nt);
    for (int64_t b = 0; b < nb; ++b) {                                    // the first largest, as torch.argmax picks
      const float* r = lg.data() + b * M.head.out; int64_t best = 0;
      for (int64_t v = 1; v < limit; ++v) if (r[v] > r[best]) best = v;
      cur[b] = o[b * n + t] = best;
    }
  }
  return out;
}
