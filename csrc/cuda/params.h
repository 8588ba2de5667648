// Torch-free parameters of the CUDA memory-op launchers (launchers.h): one plain struct per op
// and direction with typed pointers, sizes and workspace, filled by the torch binding
// (<op>_binding.cpp) or a sequence driver; and the layout of every workspace, defined once here
// and read by both the size query (workspace_bytes) and the kernels. All tensors are contiguous
// and row-major, shapes as ntm_fast/reference.py: memory (B, N, W), key/erase/add (B, H, W),
// weightings (B, H, N), beta/gate/gamma (B, H), shift (B, H, S). Includes no CUDA header, so
// host-only code (the bindings, tools/cuda_emulation) can fill them.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define NTM_LAYOUT __host__ __device__ constexpr
#else
#define NTM_LAYOUT constexpr
#endif

namespace ntm_fast {
namespace cuda {

// Element storage of float16 / bfloat16 tensors: the bits of __half (at::Half) and
// __nv_bfloat16 (at::BFloat16), so neither side needs the other's type.
struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// Accumulation type of element type T: float for float and the half types, double for double.
template <typename T>
struct Acc {
  using type = float;
};
template <>
struct Acc<double> {
  using type = double;
};
template <typename T>
using acc_t = typename Acc<T>::type;

// ---- workspace layouts: offsets (in accumulation-type values) inside one (batch, head) block
// of stride() values; block bh starts at workspace + block(bh) = bh * stride() (written in the
// association the kernels had before the layouts: ptxas' register allocation depends on it) --

struct ContentFwdWorkspace {  // content_address_fwd
  int64_t N;
  NTM_LAYOUT int64_t wc() const { return 0; }  // content weighting
  NTM_LAYOUT int64_t stride() const { return N; }
  NTM_LAYOUT int64_t block(int64_t bh) const { return bh * N; }
};

struct AddressFwdWorkspace {  // address_fwd: the three stages before sharpening
  int64_t N;
  NTM_LAYOUT int64_t wc() const { return 0; }
  NTM_LAYOUT int64_t wg() const { return N; }      // interpolated
  NTM_LAYOUT int64_t wt() const { return 2 * N; }  // shifted
  NTM_LAYOUT int64_t stride() const { return 3 * N; }
  NTM_LAYOUT int64_t block(int64_t bh) const { return bh * 3 * N; }
};

struct SharpenBwdWorkspace {  // sharpen_bwd
  int64_t N;
  NTM_LAYOUT int64_t r() const { return 0; }  // input / row max
  NTM_LAYOUT int64_t w() const { return N; }  // recomputed output
  NTM_LAYOUT int64_t stride() const { return 2 * N; }
  NTM_LAYOUT int64_t block(int64_t bh) const { return bh * 2 * N; }
};

// The rows of the content backward (eqs. 5-6), N values each: dot_i = k~.M~_i, rn_i = |M~_i|,
// the content weighting wc, then `extra` rows of the op (address_bwd: wg, r, w), the cosine
// coefficients ck, cm, cq, the rows' inverse scales rinv; then the key's inverse scale kinv (one
// value). cosine_memory_grad (content_address.cu) reads cq, cm, rinv and kinv of every head.
struct CosineBwdWorkspace {
  int64_t N, extra;
  NTM_LAYOUT int64_t dot() const { return 0; }
  NTM_LAYOUT int64_t rn() const { return N; }
  NTM_LAYOUT int64_t wc() const { return 2 * N; }
  NTM_LAYOUT int64_t ck() const { return (3 + extra) * N; }
  NTM_LAYOUT int64_t cm() const { return (4 + extra) * N; }
  NTM_LAYOUT int64_t cq() const { return (5 + extra) * N; }
  NTM_LAYOUT int64_t rinv() const { return (6 + extra) * N; }
  NTM_LAYOUT int64_t kinv() const { return rinv() + N; }  // the kernels store it as rinv[N]
  NTM_LAYOUT int64_t stride() const { return (7 + extra) * N + 1; }
  NTM_LAYOUT int64_t block(int64_t bh) const { return bh * stride(); }
};

struct ContentBwdWorkspace : CosineBwdWorkspace {  // content_address_bwd
  NTM_LAYOUT explicit ContentBwdWorkspace(int64_t n) : CosineBwdWorkspace{n, 0} {}
};

struct AddressBwdWorkspace : CosineBwdWorkspace {  // address_bwd
  NTM_LAYOUT explicit AddressBwdWorkspace(int64_t n) : CosineBwdWorkspace{n, 3} {}
  NTM_LAYOUT int64_t wg() const { return 3 * N; }  // interpolated
  NTM_LAYOUT int64_t r() const { return 4 * N; }   // shifted / row max (sharpen's input)
  NTM_LAYOUT int64_t w() const { return 5 * N; }   // the output
};

// Values and bytes of a whole workspace of layout L over B * H (batch, head) blocks.
template <class L>
constexpr int64_t workspace_elems(const L& layout, int64_t B, int64_t H) {
  return B * H * layout.stride();
}
template <typename T, class L>
constexpr size_t workspace_bytes(const L& layout, int64_t B, int64_t H) {
  return sizeof(acc_t<T>) * static_cast<size_t>(workspace_elems(layout, B, H));
}

// ---- launcher parameters (T: float, double, Half, BFloat16) ------------------------------------

// Sizes of an op call; the ones an op has no use for stay 0.
struct OpSizes {
  int64_t B = 0, H = 0, N = 0, W = 0, S = 0;
  void set_sizes(int64_t b, int64_t h, int64_t n, int64_t w, int64_t s) {
    B = b;
    H = h;
    N = n;
    W = w;
    S = s;
  }
};

template <typename T>
struct ContentAddressFwdParams : OpSizes {
  const T *memory = nullptr, *key = nullptr, *beta = nullptr;
  T* out = nullptr;
  acc_t<T>* workspace = nullptr;  // ContentFwdWorkspace
};
template <typename T>
struct ContentAddressBwdParams : OpSizes {
  const T *grad = nullptr, *memory = nullptr, *key = nullptr, *beta = nullptr;
  T *g_memory = nullptr, *g_key = nullptr, *g_beta = nullptr;
  acc_t<T>* workspace = nullptr;  // ContentBwdWorkspace
};

template <typename T>
struct InterpolateFwdParams : OpSizes {
  const T *w_content = nullptr, *w_prev = nullptr, *gate = nullptr;
  T* out = nullptr;
};
template <typename T>
struct InterpolateBwdParams : OpSizes {
  const T *grad = nullptr, *w_content = nullptr, *w_prev = nullptr, *gate = nullptr;
  T *g_content = nullptr, *g_prev = nullptr, *g_gate = nullptr;
};

template <typename T>
struct ShiftConvolveFwdParams : OpSizes {
  const T *w = nullptr, *shift = nullptr;
  T* out = nullptr;
};
template <typename T>
struct ShiftConvolveBwdParams : OpSizes {
  const T *grad = nullptr, *w = nullptr, *shift = nullptr;
  T *g_w = nullptr, *g_shift = nullptr;
};

template <typename T>
struct SharpenFwdParams : OpSizes {
  const T *w = nullptr, *gamma = nullptr;
  T* out = nullptr;
};
template <typename T>
struct SharpenBwdParams : OpSizes {
  const T *grad = nullptr, *w = nullptr, *gamma = nullptr;
  T *g_w = nullptr, *g_gamma = nullptr;
  acc_t<T>* workspace = nullptr;  // SharpenBwdWorkspace
};

template <typename T>
struct AddressFwdParams : OpSizes {
  const T *memory = nullptr, *key = nullptr, *beta = nullptr, *gate = nullptr, *shift = nullptr,
          *gamma = nullptr, *w_prev = nullptr;
  T* out = nullptr;
  acc_t<T>* workspace = nullptr;  // AddressFwdWorkspace
};
template <typename T>
struct AddressBwdParams : OpSizes {
  const T *grad = nullptr, *memory = nullptr, *key = nullptr, *beta = nullptr, *gate = nullptr,
          *shift = nullptr, *gamma = nullptr, *w_prev = nullptr;
  T *g_memory = nullptr, *g_key = nullptr, *g_beta = nullptr, *g_gate = nullptr,
    *g_shift = nullptr, *g_gamma = nullptr, *g_w_prev = nullptr;
  acc_t<T>* workspace = nullptr;  // AddressBwdWorkspace
};

template <typename T>
struct ReadFwdParams : OpSizes {
  const T *memory = nullptr, *w = nullptr;
  T* out = nullptr;
};
template <typename T>
struct ReadBwdParams : OpSizes {
  const T *grad = nullptr, *memory = nullptr, *w = nullptr;
  T *g_memory = nullptr, *g_w = nullptr;
};

template <typename T>
struct WriteFwdParams : OpSizes {
  const T *memory = nullptr, *w = nullptr, *erase = nullptr, *add = nullptr;
  T* out = nullptr;
};
template <typename T>
struct WriteBwdParams : OpSizes {
  const T *grad = nullptr, *memory = nullptr, *w = nullptr, *erase = nullptr, *add = nullptr;
  T *g_memory = nullptr, *g_w = nullptr, *g_erase = nullptr, *g_add = nullptr;
};

}  // namespace cuda
}  // namespace ntm_fast
