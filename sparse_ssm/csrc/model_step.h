// The whole-model step for one instruction set: every layer's `layer_step` (declared by the architecture's ISA body
// before it includes this file), the final norm and the head, inside one team of threads. No include guard: it is
// part of an ISA body (mamba_step.h, mamba2_step.h, mamba3_step.h).
template <class Layer>
static void model_step(const std::vector<Layer>& layers, float* x, float eps, const float* norm_f, const Lin& head,
                       float* logits, int64_t ldl, const Work& w, float* priv, int64_t per, int nt) {
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    const int tid = nt > 1 ? omp_get_thread_num() : 0, team = nt > 1 ? omp_get_num_threads() : 1;
    const Work p = w.at(priv + tid * per);
    for (const Layer& Ly : layers) layer_step(Ly, x, p, eps, tid, team);
    rmsnorm(x, norm_f, eps, p.nb, p.dm, p.xn);
    // the head: rows split in blocks of 16 so that each thread streams its own part of the matrix
    const int64_t blocks = (head.out + 15) / 16, b0 = blocks * tid / team, b1 = blocks * (tid + 1) / team;
    lin(head, p.xn, p.dm, logits, ldl, p.nb, b0 * 16, std::min(head.out, b1 * 16), false, p.xpad);
  }
}
