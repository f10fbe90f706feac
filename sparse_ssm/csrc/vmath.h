// The vectorisable fp32 exp, log(1 + y), softplus and sigmoid (fp64 keeps std::exp), shared by the scan, the
// conv and the decoding step. No include guard: a file that compiles a kernel once per instruction set includes
// it inside each ISA namespace (isa_copies.h), so that each copy is compiled, and vectorised, for its own target.

// exp for fp32 that the compiler can vectorise: 2^k * e^r with |r| <= ln2/2, Taylor to degree 7
static inline float vexp(float x) {
  const float shift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  float k = (x * 1.44269504088896341f + shift) - shift;
  float r = x - k * 0.693145751953125f;
  r = r - k * 1.42860682030941723e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f; p = p * r + 1.0f / 120.0f; p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;   p = p * r + 0.5f;           p = p * r + 1.0f;
  p = p * r + 1.0f;
  int32_t ki = (int32_t)k;
  ki = ki < -127 ? -127 : (ki > 128 ? 128 : ki);  // 2^-127 is built as 0, 2^128 as inf
  int32_t bits = (ki + 127) << 23;
  float scale; std::memcpy(&scale, &bits, sizeof(float));
  return p * scale;
}
// log(1 + y) for y in [0, 1], vectorisable: m = 1 + y is halved above sqrt(2), then
// log(m) = e ln 2 + 2 atanh(s) with s = f / (2 + f), f = m - 1 taken exactly, |s| <= 0.172
static inline float vlog1p01(float y) {
  const bool big = y > 0.41421356f;
  const float f = big ? (y - 1.0f) * 0.5f : y;     // exact in fp32 both ways
  const float s = f / (2.0f + f), s2 = s * s;
  float p = 1.0f / 9.0f;
  p = p * s2 + 1.0f / 7.0f; p = p * s2 + 1.0f / 5.0f; p = p * s2 + 1.0f / 3.0f; p = p * s2 + 1.0f;
  return (big ? 0.693147180559945309f : 0.0f) + 2.0f * s * p;
}
static inline float vsoftplus(float x) {  // max(x, 0) + log1p(e^-|x|): no overflow, no branch
  const float ax = x < 0.0f ? -x : x;
  return (x > 0.0f ? x : 0.0f) + vlog1p01(vexp(-ax));
}
static inline float vsigmoid(float x) { return 1.0f / (1.0f + vexp(-x)); }
static inline double vexp(double x) { return std::exp(x); }
static inline double vsoftplus(double x) { return x > 20.0 ? x : std::log1p(std::exp(x)); }
static inline double vsigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
