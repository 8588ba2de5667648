// CPU vector helpers: fixed-order lane reductions, 4-lane exp/log, parallel grain. Used by
// every CPU kernel (csrc/cpu/*.cpp) and the whole-sequence loop. Header-only (templates and
// inline functions), namespace ntm_fast::cpu.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

// The namespace of everything in csrc/cpu/*.h: `cpu` by default; sequence_avx2.cpp compiles
// the same headers for AVX2 + FMA as `avx2` (distinct symbols, so no inline function
// compiled for AVX2 can be picked for the default build).
#ifndef NTM_CPU_NS
#define NTM_CPU_NS cpu
#endif

namespace ntm_fast {
namespace NTM_CPU_NS {

// Work (in inner-loop iterations) below which a parallel_for runs on the calling thread:
// the per-step ops on small shapes must not pay for waking the thread pool.
constexpr int64_t kGrainWork = 1 << 15;

inline int64_t grain_for(int64_t work_per_item) {
  return std::max<int64_t>(1, kGrainWork / std::max<int64_t>(1, work_per_item));
}

template <typename A>
std::vector<A> scratch(int64_t n) {
  return std::vector<A>(static_cast<size_t>(n));
}

// Deterministic sums of independent terms (write_bwd's dL/dw): kLanes interleaved partial
// sums (lane l takes the terms m = l mod kLanes), added in a fixed tree at the end: a fixed
// order for any thread count, and independent chains the CPU can overlap.
constexpr int kLanes = 8;

template <typename A>
inline A lane_total(const A* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

// ---- small vector helpers (GCC/Clang vector extensions: SSE2 on x86-64, NEON on arm64) ------
// Fixed-order lane reductions: lane l of a sum takes the terms i = l mod L, the lanes are added
// in a fixed tree at the end; the order depends only on the length, never on the thread count.

template <typename A>
struct Vec {
  typedef A v4 __attribute__((vector_size(4 * sizeof(A))));
};

template <typename A>
inline typename Vec<A>::v4 vload(const A* p) {
  typename Vec<A>::v4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename A>
inline A hsum(typename Vec<A>::v4 v) {
  return (v[0] + v[1]) + (v[2] + v[3]);
}

// sum_m a[m] * x[m] in 4 lanes (A storage on both sides).
template <typename A>
inline A vdot(const A* __restrict__ a, const A* __restrict__ x, int64_t W) {
  typename Vec<A>::v4 acc = {};
  int64_t m = 0;
  for (; m + 4 <= W; m += 4) acc += vload(a + m) * vload(x + m);
  A rem = 0;
  for (; m < W; ++m) rem += a[m] * x[m];
  return hsum<A>(acc) + rem;
}

// Sum of x[0..n) in 8 lanes.
template <typename A>
inline A vsum(const A* __restrict__ x, int64_t n) {
  typename Vec<A>::v4 a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += vload(x + i);
    a1 += vload(x + i + 4);
  }
  A rem = 0;
  for (; i < n; ++i) rem += x[i];
  return hsum<A>(a0 + a1) + rem;
}

// sum_i a[i] * b[i] over a row of length n, 8 lanes.
template <typename A>
inline A vdot8(const A* __restrict__ a, const A* __restrict__ b, int64_t n) {
  typename Vec<A>::v4 a0 = {}, a1 = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    a0 += vload(a + i) * vload(b + i);
    a1 += vload(a + i + 4) * vload(b + i + 4);
  }
  A rem = 0;
  for (; i < n; ++i) rem += a[i] * b[i];
  return hsum<A>(a0 + a1) + rem;
}

// Max of x[0..n) (n >= 1); NaN entries are skipped as by the scalar std::max chain.
template <typename A>
inline A vmax(const A* __restrict__ x, int64_t n) {
  A mx = x[0];
  int64_t i = 0;
  if (n >= 4) {
    typename Vec<A>::v4 a = vload(x);
    for (i = 4; i + 4 <= n; i += 4) {
      const typename Vec<A>::v4 v = vload(x + i);
      a = a < v ? v : a;
    }
    mx = std::max(std::max(a[0], a[1]), std::max(a[2], a[3]));
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  return mx;
}

// exp and log for float rows: branch-free (Cephes) forms on 4-lane vectors, ~1-2 ulp (glibc's
// are ~0.5 ulp but one call per element). exp(0) = 1 and log(1) = 0 exactly; exp(x) for
// x < -87.3 (results below FLT_MIN) is 0, NaN stays NaN. The scalar forms run the same vector
// code on one lane, so every element gets the same result wherever it sits in a row. Double
// keeps libm.
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

inline v4f exp4(v4f x) {
  const v4f zero = {}, lo = zero - 87.3f, hi = zero + 88.3f;
  const v4i below = x < lo, above = x > hi;
  v4f xc = below ? lo : x;
  xc = above ? hi : xc;
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const v4f n = (xc * 1.44269504088896341f + magic) - magic;
  v4f r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  v4f y = zero + 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * (r * r) + r + 1.0f;
  const v4i ni = __builtin_convertvector(n, v4i);
  const v4f scale = reinterpret_cast<v4f>((ni + 127) << 23);
  v4f res = y * scale;
  res = below ? zero : res;
  return above ? zero + std::numeric_limits<float>::infinity() : res;
}

// log(x) for x > 0 (callers select another value for x <= 0); subnormals are rescaled.
inline v4f log4(v4f x) {
  const v4f zero = {};
  const v4i sub = x < 1.17549435e-38f;
  const v4f xs = sub ? x * 8388608.0f : x;  // * 2^23
  const v4i bits = reinterpret_cast<v4i>(xs);
  v4f e = __builtin_convertvector((bits >> 23) - 126, v4f);
  e = sub ? e - 23.0f : e;
  v4f m = reinterpret_cast<v4f>((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const v4i small = m < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  m = small ? (m + m) - 1.0f : m - 1.0f;
  const v4f z = m * m;
  v4f y = zero + 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += e * -2.12194440e-4f;
  y += z * -0.5f;
  v4f res = m + y;
  res += e * 0.693359375f;
  return res;
}

inline float row_exp(float x) { return exp4(v4f{} + x)[0]; }
inline double row_exp(double x) { return std::exp(x); }
inline float row_log(float x) { return log4(v4f{} + x)[0]; }
inline double row_log(double x) { return std::log(x); }

// x[i] = exp(scale * x[i]) over a row.
template <typename A>
inline void exp_row(A* x, A scale, int64_t n) {
  int64_t i = 0;
  if constexpr (std::is_same_v<A, float>) {
    for (; i + 4 <= n; i += 4) {
      v4f v;
      std::memcpy(&v, x + i, sizeof(v));
      v = exp4(v * scale);
      std::memcpy(x + i, &v, sizeof(v));
    }
  }
  for (; i < n; ++i) x[i] = row_exp(scale * x[i]);
}

// x[i] = log(x[i]) for x[i] > 0, -inf for 0, NaN below 0 or NaN.
template <typename A>
inline void log_row(A* x, int64_t n) {
  const A ninf = -std::numeric_limits<A>::infinity();
  const A nan = std::numeric_limits<A>::quiet_NaN();
  int64_t i = 0;
  if constexpr (std::is_same_v<A, float>) {
    const v4f one = v4f{} + 1.0f, vninf = v4f{} + ninf, vnan = v4f{} + nan;
    for (; i + 4 <= n; i += 4) {
      v4f v;
      std::memcpy(&v, x + i, sizeof(v));
      const v4i pos = v > 0.0f, zero = v == 0.0f;
      const v4f l = log4(pos ? v : one);
      v = pos ? l : (zero ? vninf : vnan);
      std::memcpy(x + i, &v, sizeof(v));
    }
  }
  for (; i < n; ++i) {
    const A v = x[i];
    x[i] = v > A(0) ? row_log(v) : (v == A(0) ? ninf : nan);
  }
}

// sum_m a[m] * x[m] for a row x of storage type T.
template <typename T, typename A>
inline A row_dot(const A* a, const T* x, int64_t W) {
  if constexpr (std::is_same_v<T, A>) {
    return vdot(a, x, W);
  } else {
    A u = 0;
    for (int64_t m = 0; m < W; ++m) u += a[m] * static_cast<A>(x[m]);
    return u;
  }
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
