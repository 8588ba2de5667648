// Per-element math of the NTM memory ops, shared by the CPU (csrc/cpu) and CUDA (csrc/cuda)
// implementations. Torch-free: plain C++ that nvcc and the host compiler both accept.
//
// Conventions are those of ntm_fast/reference.py (the contract), written out in docs/math.md
// (forward) and docs/math-backward.md (the gradients below):
//   * cosine K = u / (|k| |M_i| + eps), eps = NTM_COSINE_EPS (ntm_fast.numerics.COSINE_EPS),
//     computed on power-of-two-rescaled vectors (scale-safe for any finite input); the unit
//     vector of a zero vector is taken as 0, so zero norms give finite gradients;
//   * shift index j means offset d = j - k; w~_i = sum_d s_d w_{(i - d) mod N};
//   * sharpening is scale-free: r = w~ / max(w~) (1 for an all-zero row, see sharpen_scale),
//     w = r^gamma / max(sum r^gamma, NTM_SHARPEN_TINY);
//   * write: all erases, then all adds.
// `A` is the accumulation type: float for float/half/bfloat16, double for double.
#pragma once

#include <math.h>
#include <cstdint>

#if defined(__CUDACC__)
#define NTM_HD __host__ __device__ __forceinline__
#else
#define NTM_HD inline
#endif

namespace ntm_fast {

// Must equal ntm_fast.numerics.COSINE_EPS and SHARPEN_TINY (checked by the tests).
constexpr double NTM_COSINE_EPS = 1e-8;
constexpr double NTM_SHARPEN_TINY = 1e-30;
// Must equal ntm_fast.numerics.NORM_SQ_LO / NORM_SQ_HI (tested): the fast-path range of a
// plain squared norm, docs/math.md#scale-safe-norms.
constexpr double NTM_NORM_SQ_LO = 0x1p-60;
constexpr double NTM_NORM_SQ_HI = 0x1p60;

// Float and double overloads that resolve the same way in host and device code.
NTM_HD float ntm_exp(float x) { return expf(x); }
NTM_HD double ntm_exp(double x) { return exp(x); }
NTM_HD float ntm_log(float x) { return logf(x); }
NTM_HD double ntm_log(double x) { return log(x); }
NTM_HD float ntm_pow(float x, float y) { return powf(x, y); }
NTM_HD double ntm_pow(double x, double y) { return pow(x, y); }
NTM_HD float ntm_sqrt(float x) { return sqrtf(x); }
NTM_HD double ntm_sqrt(double x) { return sqrt(x); }
NTM_HD float ntm_frexp(float x, int* e) { return frexpf(x, e); }
NTM_HD double ntm_frexp(double x, int* e) { return frexp(x, e); }
NTM_HD float ntm_ldexp(float x, int e) { return ldexpf(x, e); }
NTM_HD double ntm_ldexp(double x, int e) { return ldexp(x, e); }

template <typename A>
NTM_HD A sharpen_tiny() {
  // 1e-30 is a normal float (FLT_MIN ~ 1.2e-38), so the same value serves both types.
  return static_cast<A>(NTM_SHARPEN_TINY);
}

// ---- storing gradients in a half type (ntm_fast.numerics.saturate) ----------------------------
// docs/math.md#gradient-saturation

// Largest finite float16 / bfloat16 values (torch.finfo(dtype).max), exact in float.
constexpr float NTM_FLOAT16_MAX = 0x1.ffcp15f;     // 65504
constexpr float NTM_BFLOAT16_MAX = 0x1.fep127f;    // 3.3895313892515355e38

// The storage type a gradient is written to: a wide type (float, double: no clamp) or a half type.
enum class Store { Wide, Float16, BFloat16 };

// A gradient computed in the accumulation type A, clamped to the finite range of its storage
// type so that the cast saturates at +-finfo(dtype).max instead of overflowing to inf (the
// cosine's exact gradient at a zero-norm key or row is ~M_i / eps ~ 1e8). NaN stays NaN.
// Every store of a gradient on CPU and CUDA goes through this (store_grad in each backend).
template <Store K, typename A>
NTM_HD A saturate_grad(A x) {
  if (K == Store::Wide) return x;
  const A big = static_cast<A>(K == Store::Float16 ? NTM_FLOAT16_MAX : NTM_BFLOAT16_MAX);
  return x > big ? big : (x < -big ? -big : x);
}

// ---- cosine similarity (eq. 6) -------------------------------------------------------------
// docs/math.md#content-addressing, docs/math-backward.md#cosine-backward

// Scale-safe norms (docs/math.md#scale-safe-norms). Every key and row carries its norm n and
// an exact power-of-two inverse scale s^-1 (1 on the fast path): the kernels work on
// x~ = x s^-1, n = |x~|, so no square, norm or dot product overflows or underflows.

// True if a plain squared norm can be used as is (false for 0, NaN, inf and far out of range).
template <typename A>
NTM_HD bool norm_sq_plain(A sq) {
  return sq >= static_cast<A>(NTM_NORM_SQ_LO) && sq <= static_cast<A>(NTM_NORM_SQ_HI);
}

// 2^-e for absmax = m 2^e (m in [0.5, 1)), e clamped so that 2^e and 2^-e are normal; 1 for
// 0, inf and NaN (ntm_fast.numerics.inverse_pow2_scale). Multiplying by it is exact.
template <typename A>
NTM_HD A inverse_pow2_scale(A absmax) {
  if (!(absmax > A(0)) || !(absmax - absmax == A(0))) return A(1);
  int e = 0;
  ntm_frexp(absmax, &e);
  const int emax = sizeof(A) == sizeof(float) ? 126 : 1022;
  e = e < -emax ? -emax : (e > emax ? emax : e);
  return ntm_ldexp(A(1), -e);
}

// Smallest normal number of A: the floor of the cosine denominator.
template <typename A>
NTM_HD A smallest_normal() {
  return sizeof(A) == sizeof(float) ? static_cast<A>(0x1p-126) : static_cast<A>(0x1p-1022);
}

// Scaled denominator D~ = |k~| |M~_i| + eps s_k^-1 s_i^-1 = D / (s_k s_i) (D = |k||M_i| + eps
// on the fast path), floored at the smallest normal number (only a zero vector against a huge
// one gets there, where K = 0). K_i = (k~ . M~_i) / D~. NaN stays NaN.
template <typename A>
NTM_HD A cosine_denominator(A key_norm, A row_norm, A key_inv, A row_inv) {
  const A d = key_norm * row_norm + static_cast<A>(NTM_COSINE_EPS) * key_inv * row_inv;
  return d < smallest_normal<A>() ? smallest_normal<A>() : d;
}

// 1 / |x|, or 0 for a zero vector (its unit vector is taken as 0, as torch's norm backward does).
template <typename A>
NTM_HD A safe_inverse_norm(A norm) {
  return norm > A(0) ? A(1) / norm : A(0);
}

// The gradient scale of one side of the cosine: 1 / (s_self D~) = s_other / D, written
// 1 / (|k~||M~_i| s_self + eps s_other^-1) so that no step overflows or underflows (a true
// norm beyond the float range gives 0); capped at the largest finite value so that a zero
// vector against a huge one cannot give inf * 0.
//   dK/dk   = P_i (M~_i - K_i (|M~_i| / |k~|) k~),    P_i = cosine_grad_scale(kn, rn, kinv, rinv)
//   dK/dM_i = Q_i (k~ - K_i (|k~| / |M~_i|) M~_i),    Q_i = cosine_grad_scale(kn, rn, rinv, kinv)
template <typename A>
NTM_HD A cosine_grad_scale(A key_norm, A row_norm, A self_inv, A other_inv) {
  const A big = sizeof(A) == sizeof(float) ? static_cast<A>(0x1.fffffep127)
                                           : static_cast<A>(0x1.fffffffffffffp1023);
  const A p = A(1) / (key_norm * row_norm / self_inv + static_cast<A>(NTM_COSINE_EPS) * other_inv);
  return p > big ? big : p;
}

// Coefficient of the self-term of one side: K_i |other~| / |self~| times that side's scale,
// 0 when |self~| = 0.
template <typename A>
NTM_HD A cosine_self_coef(A K, A other_norm, A self_norm, A scale) {
  return K * other_norm * safe_inverse_norm(self_norm) * scale;
}

// ---- softmax (eq. 5) -----------------------------------------------------------------------
// docs/math.md#content-addressing, docs/math-backward.md#softmax-backward

// exp(z - zmax): the max-subtracted exponent of the stable softmax.
template <typename A>
NTM_HD A stable_exp(A z, A zmax) {
  return ntm_exp(z - zmax);
}

// dL/dz_i = w_i (g_i - <w, g>).
template <typename A>
NTM_HD A softmax_grad(A w, A g, A w_dot_g) {
  return w * (g - w_dot_g);
}

// ---- interpolation (eq. 7) -----------------------------------------------------------------
// docs/math.md#interpolation

template <typename A>
NTM_HD A interpolate(A wc, A wp, A g) {
  return g * wc + (A(1) - g) * wp;
}

// ---- circular shift (eq. 8) ----------------------------------------------------------------
// docs/math.md#circular-shift

// Source slot of output slot i for shift index j (offset d = j - k): (i - d) mod N.
// Valid for 0 <= i < N, 0 <= j < S <= N, so i - j + k lies in (-N, 2N).
NTM_HD int64_t shift_source(int64_t i, int64_t j, int64_t k, int64_t N) {
  int64_t s = i - j + k;
  if (s < 0) s += N;
  if (s >= N) s -= N;
  return s;
}

// Destination slot that reads slot i with shift index j: (i + d) mod N (used by the backward).
NTM_HD int64_t shift_dest(int64_t i, int64_t j, int64_t k, int64_t N) {
  int64_t s = i + j - k;
  if (s < 0) s += N;
  if (s >= N) s -= N;
  return s;
}

// ---- sharpening (eq. 9) --------------------------------------------------------------------
// docs/math.md#sharpening, docs/math-backward.md#sharpening-backward

// The (detached) divisor of the row: its maximum when positive, else 1 (an all-zero row), as
// in the reference. Not floored at NTM_SHARPEN_TINY: that would break the scale invariance for
// rows whose maximum is below it, and give an all-zero row the gradient 1/tiny^2 instead of
// the reference's 1/tiny. Callers divide by it (r = w~ / scale): a subnormal float maximum has
// no finite inverse.
template <typename A>
NTM_HD A sharpen_scale(A row_max) {
  return row_max > A(0) ? row_max : A(1);
}

// r^gamma for r in [0, 1]; pow(0, 0) = 1 as in torch.
template <typename A>
NTM_HD A sharpen_power(A r, A gamma) {
  return ntm_pow(r, gamma);
}

// d(r^gamma)/dr = gamma r^(gamma - 1) (power form: no 0/0 where r underflowed).
template <typename A>
NTM_HD A sharpen_power_grad(A r, A gamma) {
  return gamma * ntm_pow(r, gamma - A(1));
}

// d(r^gamma)/dgamma = r^gamma log r, taken as 0 where r = 0 (as torch's pow backward).
template <typename A>
NTM_HD A sharpen_gamma_term(A p, A r) {
  return r > A(0) ? p * ntm_log(r) : A(0);
}

// ---- erase / add (eqs. 3-4) ----------------------------------------------------------------
// docs/math.md#write, docs/math-backward.md#write-backward

// One head's keep factor 1 - w_i e_m.
template <typename A>
NTM_HD A erase_factor(A w, A e) {
  return A(1) - w * e;
}

// Contribution of head h to dL/dw_h,i at column m, given the product of the other heads'
// keep factors `others`: g (a_m - M_m e_m others).
template <typename A>
NTM_HD A write_w_grad_term(A g, A m, A e, A a, A others) {
  return g * (a - m * e * others);
}

// Contribution to dL/de_h,m at row i: -g M w_h others.
template <typename A>
NTM_HD A write_e_grad_term(A g, A m, A w, A others) {
  return -g * m * w * others;
}

}  // namespace ntm_fast
