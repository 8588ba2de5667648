// Row forms of the controller's activations for the CPU sequence loop: sigmoid and tanh over
// contiguous rows, on 4-lane vectors for float (exp4 of vec.h; tanh in Cephes' tanhf form:
// an odd polynomial below |x| = 0.625, 1 - 2 / (exp(2|x|) + 1) above, ~2 ulp), libm for
// double. The formulas are those of csrc/step_math.h; NaN stays NaN.
#pragma once

#include "../step_math.h"
#include "vec.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

inline v4f tanh4(v4f x) {
  const v4f one = v4f{} + 1.0f, two = v4f{} + 2.0f;
  const v4f ax = x < 0 ? -x : x;
  const v4f z = x * x;
  const v4f poly =
      ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z +
        1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
  v4f big = one - two / (exp4(ax * 2.0f) + one);
  big = x < 0 ? -big : big;
  return ax < 0.625f ? poly : big;
}

inline v4f sigmoid4(v4f x) { return 1.0f / (1.0f + exp4(-x)); }

template <typename A, typename VecFn, typename ScalarFn>
inline void map_row(const A* in, A* out, int64_t n, VecFn vf, ScalarFn sf) {
  int64_t i = 0;
  if constexpr (std::is_same_v<A, float>) {
    for (; i + 4 <= n; i += 4) {
      v4f v;
      std::memcpy(&v, in + i, sizeof(v));
      v = vf(v);
      std::memcpy(out + i, &v, sizeof(v));
    }
    for (; i < n; ++i) out[i] = vf(v4f{} + in[i])[0];  // same lanes' math for the tail
  } else {
    for (; i < n; ++i) out[i] = sf(in[i]);
  }
}

template <typename A>
inline void tanh_row(const A* in, A* out, int64_t n) {
  map_row(in, out, n, tanh4, [](A v) { return ntm_tanh(v); });
}

template <typename A>
inline void sigmoid_row(const A* in, A* out, int64_t n) {
  map_row(in, out, n, sigmoid4, [](A v) { return sigmoid(v); });
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
