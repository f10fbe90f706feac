// What every fused decoding step shares outside its instruction-set copies (chapter 18a): reading a `Lin` and the
// embedding from the flat argument lists, the choice of the next token (greedy, or a seeded draw after repetition
// penalty, temperature, top-k and top-p, exactly as chapter 18's `choose_next`), and the entry point that runs one
// step, or n steps feeding each chosen token back, without returning to Python. An architecture (decode.cpp,
// decode2.cpp, decode3.cpp) gives a struct A with: Layer, LT and LM (tensors and integers per layer), read(),
// shared() and priv() (scratch floats), lins() and run() (its model_step at the level in use).
#pragma once
#include <limits>
#include <queue>
#include "decode.h"

static const float* fptr(const at::Tensor& t, const char* what) {
  if (!t.numel()) return nullptr;
  TORCH_CHECK(t.scalar_type() == at::kFloat && t.is_contiguous() && t.device().is_cpu(), what, " must be a contiguous float32 CPU tensor");
  return t.data_ptr<float>();
}
template <class T> static const T* tptr(const at::Tensor& t, at::ScalarType st, const char* what) {
  TORCH_CHECK(t.scalar_type() == st && t.is_contiguous() && t.device().is_cpu(), what, " has the wrong dtype or is not contiguous");
  return reinterpret_cast<const T*>(t.data_ptr());
}
constexpr int LIN_T = 6, LIN_M = 4;   // tensors and integers of one product (see `lin_args` in Python)

// t: [weight | values | codes, row offsets, columns | bits, scales, first scale of each row, bias]; m: kind, out, in, group
static Lin to_lin(const at::Tensor* t, const int64_t* m) {
  Lin L{}; L.kind = (int)m[0]; L.out = m[1]; L.in = m[2]; L.group = std::max<int64_t>(1, m[3]);
  L.W64 = (L.in + 63) / 64; L.inp = (L.in + L.group - 1) / L.group * L.group;
  TORCH_CHECK(L.kind >= 0 && L.kind <= 5, "unknown product kind ", L.kind);
  if (L.kind == 0) { L.w = fptr(t[0], "a weight"); TORCH_CHECK(t[0].dim() == 2 && t[0].size(1) == L.in && t[0].size(0) >= L.out, "dense weight of the wrong shape"); }
  if (L.kind == 1 || L.kind == 2) { L.vals = fptr(t[0], "packed values"); }
  if (L.kind >= 1 && L.kind != 3 && L.kind != 4) {
    L.rp = tptr<int32_t>(t[1], at::kInt, "row offsets"); TORCH_CHECK(t[1].numel() >= L.out + 1, "row offsets too short");
  }
  if (L.kind == 1 || L.kind == 5) L.cols = tptr<uint16_t>(t[2], at::kShort, "column indices");
  if (L.kind == 2) { L.bits = tptr<uint64_t>(t[2], at::kLong, "bitmask"); L.W64 = t[2].size(1); }
  if (L.kind >= 3) {
    if (t[3].scalar_type() == at::kHalf) L.s16 = tptr<uint16_t>(t[3], at::kHalf, "scales"); else L.s32 = fptr(t[3], "scales");
  }
  if (L.kind == 3) {
    L.q8 = tptr<int8_t>(t[0], at::kChar, "int8 codes");
    TORCH_CHECK(t[0].dim() == 2 && t[0].size(1) == L.inp && t[0].size(0) >= L.out && t[3].numel() >= L.out * (L.inp / L.group), "int8 codes or scales of the wrong size");
  }
  if (L.kind == 4) {
    L.q4 = tptr<uint8_t>(t[0], at::kByte, "int4 codes");
    TORCH_CHECK(L.group % 2 == 0 && t[0].dim() == 2 && t[0].size(1) * 2 == L.inp && t[0].size(0) >= L.out && t[3].numel() >= L.out * (L.inp / L.group), "int4 codes or scales of the wrong size");
  }
  if (L.kind == 5) {
    L.q8 = tptr<int8_t>(t[0], at::kChar, "int8 values"); L.srp = tptr<int32_t>(t[4], at::kInt, "scale offsets");
    TORCH_CHECK(t[4].numel() >= L.out + 1 && t[2].numel() == t[0].numel() && t[0].numel() >= L.rp[L.out]
                && t[3].numel() >= L.srp[L.out], "sparse int8 product: arrays of the wrong size");
  }
  L.bias = fptr(t[5], "a bias");
  return L;
}

// row `id` of an embedding table held as a Lin (dense, int8 or int4), as fp32
static void emb_row(const Lin& E, int64_t id, float* out) {
  if (E.kind == 0) { std::copy(E.w + id * E.in, E.w + (id + 1) * E.in, out); return; }
  const int64_t G = E.inp / E.group;
  for (int64_t c = 0; c < E.in; ++c) {
    const int64_t j = id * E.inp + c;
    const int code = E.kind == 3 ? E.q8[j] : (c & 1 ? E.q4[j / 2] >> 4 : E.q4[j / 2] & 15) - 8;
    out[c] = (float)code * lin_scale(E, id * G + c / E.group);
  }
}

// ---- the choice of the next token ----
static inline uint64_t mix64(uint64_t z) {   // splitmix64's finaliser
  z += 0x9E3779B97F4A7C15ull; z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull; z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
// the uniform draw in [0, 1) of row `row` at step `step` of a generation seeded with `seed` (chapter 18's `draw_uniform`)
static inline double draw_uniform(uint64_t seed, uint64_t step, uint64_t row) {
  return (double)(mix64(mix64(seed) ^ (step * 0x10000ull + row)) >> 11) * 0x1.0p-53;
}
struct Sampler {
  int64_t V = 0, limit = 0, top_k = 0, eos = -1, counter = 0; uint64_t seed = 0;
  double temp = 0, top_p = 1, pen = 1; bool* seen = nullptr;     // seen (nb, V) or null
};
// the next token of row b from its logits lg (V floats) at draw number `step`. With top-k, only the kept ids are
// visited after two passes over the logits (the k-th largest value, then the ids at or above it, in id order): the
// same tokens as the full rule, whose dropped ids weigh nothing in the inverse CDF.
static int64_t choose(const Sampler& S, const float* lg, int64_t b, int64_t step, std::vector<double>& z, std::vector<int64_t>& keep) {
  const int64_t V = S.V, lim = S.limit; const double NINF = -std::numeric_limits<double>::infinity();
  const bool* seen = S.seen ? S.seen + b * V : nullptr; const bool pen = seen && S.pen != 1.0;
  if (S.temp == 0 && !pen) {                      // greedy: the first largest logit, as argmax picks
    int64_t best = 0;
    for (int64_t v = 1; v < lim; ++v) if (lg[v] > lg[best]) best = v;
    return best;
  }
  auto value = [&](int64_t v) {                   // penalty, the ids past the limit, temperature: in float64
    if (v >= lim) return NINF;
    double t = lg[v];
    if (pen && seen[v]) t = t > 0 ? t / S.pen : t * S.pen;
    return S.temp == 0 ? t : t / S.temp;
  };
  keep.clear(); z.clear();
  if (S.temp != 0 && S.top_k > 0 && S.top_k < V) { // the k-th largest value (ties counted); below it is dropped
    std::priority_queue<double, std::vector<double>, std::greater<double>> heap;
    for (int64_t v = 0; v < V; ++v) {
      const double t = value(v);
      if ((int64_t)heap.size() < S.top_k) heap.push(t); else if (t > heap.top()) { heap.pop(); heap.push(t); }
    }
    const double kth = heap.top();
    for (int64_t v = 0; v < V; ++v) { const double t = value(v); if (t >= kth) { keep.push_back(v); z.push_back(t); } }
  } else {
    keep.resize(V); z.resize(V);
    for (int64_t v = 0; v < V; ++v) { keep[v] = v; z[v] = value(v); }
  }
  const int64_t n = (int64_t)keep.size();
  if (S.temp == 0) return keep[std::max_element(z.begin(), z.end()) - z.begin()];   // the first largest
  const double mx = *std::max_element(z.begin(), z.end());
  if (S.top_p < 1) {                                // the smallest most probable set with mass >= top_p
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) if (z[i] > NINF) sum += std::exp(z[i] - mx);
    std::vector<std::pair<double, int64_t>> ps; ps.reserve(n);
    for (int64_t i = 0; i < n; ++i) if (z[i] > NINF) ps.emplace_back(std::exp(z[i] - mx) / sum, i);
    std::sort(ps.begin(), ps.end(), [&](const auto& a, const auto& c) { return a.first > c.first || (a.first == c.first && keep[a.second] < keep[c.second]); });
    double cum = 0;
    for (const auto& [p, i] : ps) { cum += p; if (cum - p >= S.top_p) z[i] = NINF; }
  }
  double total = 0;                                  // inverse CDF in vocabulary order
  for (int64_t i = 0; i < n; ++i) total += z[i] > NINF ? std::exp(z[i] - mx) : 0.0;
  const double target = draw_uniform(S.seed, (uint64_t)(S.counter + step), (uint64_t)b) * total;
  double c = 0;
  for (int64_t i = 0; i < n; ++i) { c += z[i] > NINF ? std::exp(z[i] - mx) : 0.0; if (c > target) return keep[i]; }
  return V - 1;
}

// ---- the model and the entry point ----
template <class A> struct Model {
  std::vector<typename A::Layer> layers; Lin emb{}, head{}; const float* norm_f = nullptr;
  int64_t macs = 0, shared = 1; Work w{};   // multiply-adds of a step; floats of the shared scratch
};
template <class A>
static Model<A> read_model(int64_t nb, const std::vector<at::Tensor>& emb_t, const std::vector<int64_t>& emb_m,
                           const std::vector<at::Tensor>& ts, const std::vector<int64_t>& ms, const at::Tensor& norm_f,
                           const std::vector<at::Tensor>& head_t, const std::vector<int64_t>& head_m) {
  Model<A> M; const int64_t nl = (int64_t)ts.size() / A::LT;
  TORCH_CHECK(nl >= 1 && (int64_t)ts.size() == nl * A::LT && (int64_t)ms.size() == nl * A::LM, "fused step: malformed layer arguments");
  TORCH_CHECK(emb_t.size() == LIN_T && emb_m.size() == LIN_M && head_t.size() == LIN_T && head_m.size() == LIN_M, "fused step: malformed embedding or head");
  M.emb = to_lin(emb_t.data(), emb_m.data()); M.head = to_lin(head_t.data(), head_m.data());
  TORCH_CHECK(M.emb.kind == 0 || M.emb.kind == 3 || M.emb.kind == 4, "the embedding must be dense, int8 or int4");
  TORCH_CHECK(M.head.in == M.emb.in, "the head's columns must equal the embedding's width");
  Work& w = M.w; w.nb = nb; w.dm = M.emb.in; w.pad = std::max<int64_t>(1, M.head.pad()); w.arch = 0;
  M.macs = M.head.out * M.head.in;
  for (int64_t i = 0; i < nl; ++i) {
    M.layers.push_back(A::read(ts.data() + i * A::LT, ms.data() + i * A::LM, nb, w.dm));
    const auto& L = M.layers.back();
    M.shared = std::max(M.shared, A::shared(L, nb)); w.arch = std::max(w.arch, A::priv(L, nb));
    for (const Lin* q : A::lins(L)) { w.pad = std::max(w.pad, q->pad()); M.macs += q->out * q->in; }
  }
  M.norm_f = fptr(norm_f, "final norm weight"); M.macs *= nb;
  return M;
}

// n == 0: logits (nb, rows of the head) of one step. n >= 1: up to n chosen tokens (nb, n'), each fed back as the next
// input; n' < n when every row has chosen `eos`. Every layer's states are updated in place. None (an undefined tensor,
// nothing changed) when an id is outside [0, vocab).
// si: vocab, limit, top_k, eos, seed, counter; sd: temperature, top_p, repetition penalty; seen (nb, V) bool or empty
template <class A>
static at::Tensor decode_entry(at::Tensor ids, int64_t n, std::vector<at::Tensor> emb_t, std::vector<int64_t> emb_m,
                               std::vector<at::Tensor> ts, std::vector<int64_t> ms, at::Tensor norm_f,
                               std::vector<at::Tensor> head_t, std::vector<int64_t> head_m, double eps, int64_t threads,
                               std::vector<int64_t> si, std::vector<double> sd, at::Tensor seen) {
  TORCH_CHECK(ids.scalar_type() == at::kLong && ids.is_contiguous() && ids.dim() == 1 && ids.size(0) >= 1, "ids must be a non-empty contiguous 1-d int64 tensor");
  TORCH_CHECK(si.size() == 6 && sd.size() == 3 && n >= 0, "fused step: malformed sampling arguments");
  const int64_t nb = ids.size(0), vocab = si[0];
  Model<A> M = read_model<A>(nb, emb_t, emb_m, ts, ms, norm_f, head_t, head_m);
  const int64_t V = M.head.out;
  Sampler S; S.V = V; S.limit = si[1] > 0 ? std::min(si[1], V) : V; S.top_k = si[2]; S.eos = si[3];
  S.seed = (uint64_t)si[4]; S.counter = si[5]; S.temp = sd[0]; S.top_p = sd[1]; S.pen = sd[2];
  if (seen.numel()) {
    TORCH_CHECK(seen.scalar_type() == at::kBool && seen.is_contiguous() && seen.numel() == nb * V, "seen must be a contiguous bool tensor (batch, vocab)");
    S.seen = seen.data_ptr<bool>();
  }
  const int64_t* id = ids.data_ptr<int64_t>();
  for (int64_t b = 0; b < nb; ++b) if (id[b] < 0 || id[b] >= vocab || id[b] >= M.emb.out) return at::Tensor();
  const int nt = (int)std::max<int64_t>(1, M.macs < (1 << 21) ? 1 : (threads > 0 ? threads : at::get_num_threads()));
  std::vector<float> shared(M.shared + 16), x(nb * M.w.dm), priv(M.w.per() * nt);
  M.w.sh = shared.data();
  auto step = [&](const int64_t* cur, float* lp) {
    for (int64_t b = 0; b < nb; ++b) emb_row(M.emb, cur[b], x.data() + b * M.w.dm);
    A::run(M, x.data(), lp, (float)eps, priv.data(), nt);
  };
  if (n == 0) {
    auto logits = at::empty({nb, V}, at::TensorOptions().dtype(at::kFloat));
    step(id, logits.data_ptr<float>());
    return logits;
  }
  auto out = at::empty({nb, n}, ids.options());
  int64_t* o = out.data_ptr<int64_t>();
  std::vector<float> lg(nb * V); std::vector<int64_t> cur(id, id + nb), keep; std::vector<double> z;
  std::vector<char> done(nb, 0);
  int64_t t = 0;
  while (t < n) {
    step(cur.data(), lg.data());
    bool all = true;
    for (int64_t b = 0; b < nb; ++b) {
      int64_t tok = S.eos;
      if (!done[b]) {
        tok = choose(S, lg.data() + b * V, b, t, z, keep);
        if (tok == S.eos) done[b] = 1; else if (S.seen) S.seen[b * V + tok] = true;
      }
      cur[b] = o[b * n + t] = tok; all = all && done[b];
    }
    ++t;
    if (all) break;
  }
  return t == n ? out : out.narrow(1, 0, t).contiguous();
}
