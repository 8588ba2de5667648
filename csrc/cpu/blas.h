// Row-major matrix products on raw pointers for the whole-sequence loop: no tensor, no
// dispatcher and no allocation per call. They go straight to the BLAS that torch links
// (sgemm_/dgemm_, exported by torch's MKL and OpenBLAS builds; found at load time as weak
// symbols) and fall back to at::addmm_out on views of the same memory when torch exports none.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "vec.h"

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*,
            const float*, const int*, const float*, const int*, const float*, float*,
            const int*) __attribute__((weak));
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*,
            const double*, const int*, const double*, const int*, const double*, double*,
            const int*) __attribute__((weak));
}

namespace ntm_fast {
namespace NTM_CPU_NS {

inline bool have_blas() { return sgemm_ != nullptr && dgemm_ != nullptr; }

// C (M x N, leading dim ldc) = alpha op(A) op(B) + beta C, row-major; op(A) is M x K (A is
// K x M with leading dim lda when ta), op(B) K x N. A row-major product is the column-major
// product of the transposes with the operands swapped.
template <typename T>
void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    }
    return;
  }
  if (have_blas()) {
    const char cta = ta ? 'T' : 'N', ctb = tb ? 'T' : 'N';
    const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);
    const int la = static_cast<int>(lda), lb = static_cast<int>(ldb), lc = static_cast<int>(ldc);
    if constexpr (std::is_same_v<T, float>) {
      sgemm_(&ctb, &cta, &m, &n, &k, &alpha, B, &lb, A, &la, &beta, C, &lc);
    } else {
      dgemm_(&ctb, &cta, &m, &n, &k, &alpha, B, &lb, A, &la, &beta, C, &lc);
    }
    return;
  }
  const auto opts = at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value);
  auto view = [&](const T* p, int64_t rows, int64_t cols, int64_t ld, bool t) {
    at::Tensor v = at::from_blob(const_cast<T*>(p), {rows, cols}, {ld, 1}, opts);
    return t ? v.t() : v;
  };
  at::Tensor c = at::from_blob(C, {M, N}, {ldc, 1}, opts);
  const at::Tensor a = ta ? view(A, K, M, lda, true) : view(A, M, K, lda, false);
  const at::Tensor b = tb ? view(B, N, K, ldb, true) : view(B, K, N, ldb, false);
  if (beta == T(0)) c.zero_();
  at::addmm_out(c, c, a, b, beta == T(0) ? T(1) : beta, alpha);
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
