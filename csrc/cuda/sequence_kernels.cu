// The per-step kernels of the CUDA whole-sequence ops (see sequence_launchers.h): the
// controller's and the heads' activations and their derivatives, written with the
// __host__ __device__ functions of csrc/step_math.h (one definition with the CPU loop), and the
// small row kernels of the step (bias rows, sums, the lengths mask). Elementwise kernels use one
// thread per output element in grid-stride loops; column sums add fixed chunks of rows in order,
// then the chunks in order, so every result is deterministic.
#include <cuda_runtime.h>

#include <cstdint>

#include "../step_math.h"
#include "sequence_launchers.h"

namespace ntm_fast {
namespace cuda {
namespace {

constexpr int kThreads = 256;

unsigned blocks(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (1 << 20) ? (1 << 20) : b));
}

#define NTM_GRID_LOOP(i, total)                                                 \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); \
       i += int64_t(gridDim.x) * blockDim.x)

__device__ __forceinline__ bool finished(const int64_t* len, int64_t t, int64_t b) {
  return len != nullptr && t >= len[b];
}

template <typename T>
__global__ void fill_rows_kernel(T* dst, const T* row, int64_t rows, int64_t n) {
  NTM_GRID_LOOP(i, rows * n) { dst[i] = row[i % n]; }
}

template <typename T>
__global__ void add_rows_kernel(T* dst, int64_t ldd, const T* a, int64_t lda, const T* b,
                                int64_t ldb, int64_t rows, int64_t n) {
  NTM_GRID_LOOP(i, rows * n) {
    const int64_t r = i / n, j = i % n;
    dst[r * ldd + j] = a[r * lda + j] + b[r * ldb + j];
  }
}

template <typename T>
__global__ void sum3_kernel(T* dst, const T* a, const T* b, const T* c, int64_t n) {
  NTM_GRID_LOOP(i, n) { dst[i] = a[i] + b[i] + c[i]; }
}

// out[q, j] = sum of a[r, j] over the rows r of chunk q (`chunk` rows), in order.
template <typename T>
__global__ void column_sums_kernel(const T* a, int64_t rows, int64_t n, int64_t chunk, T* out) {
  const int64_t chunks = (rows + chunk - 1) / chunk;
  NTM_GRID_LOOP(i, chunks * n) {
    const int64_t q = i / n, j = i % n, end = rows < (q + 1) * chunk ? rows : (q + 1) * chunk;
    T acc = 0;
    for (int64_t r = q * chunk; r < end; ++r) acc += a[r * n + j];
    out[i] = acc;
  }
}

template <typename T>
__global__ void zero_finished_kernel(T* a, const int64_t* len, int64_t B, int64_t total,
                                     int64_t n) {
  NTM_GRID_LOOP(i, total) {
    const int64_t row = i / n;
    if (finished(len, row / B, row % B)) a[i] = T(0);
  }
}

// One thread per (b, j): the four gates of unit j, then c' and h'.
template <typename T>
__global__ void lstm_fwd_kernel(T* act, const T* c_prev, T* c_new, T* h, const int64_t* len,
                                int64_t t, int64_t B, int64_t C) {
  NTM_GRID_LOOP(k, B * C) {
    const int64_t b = k / C, j = k % C;
    T* g = act + b * 4 * C;
    const T i = sigmoid(g[j]), f = sigmoid(g[C + j]), gg = ntm_tanh(g[2 * C + j]),
            o = sigmoid(g[3 * C + j]);
    g[j] = i;
    g[C + j] = f;
    g[2 * C + j] = gg;
    g[3 * C + j] = o;
    if (finished(len, t, b)) {
      c_new[k] = c_prev[k];
      continue;
    }
    const T c = lstm_cell(i, f, gg, c_prev[k]);
    c_new[k] = c;
    h[k] = o * ntm_tanh(c);
  }
}

template <typename T>
__global__ void tanh_fwd_kernel(T* a, int64_t n) {
  NTM_GRID_LOOP(i, n) { a[i] = ntm_tanh(a[i]); }
}

// Items of one batch row: H*W key entries, H heads (beta, gate, gamma, shift), Hw*W erase and
// Hw*W add entries; one thread per item.
template <typename T>
__global__ void heads_activate_kernel(SeqConfig c, const T* raw, HeadPtrs<T> p) {
  const int64_t HW = c.H * c.W, E = c.Hw * c.W, per = HW + c.H + 2 * E;
  NTM_GRID_LOOP(idx, c.B * per) {
    const int64_t b = idx / per, k = idx % per;
    const T* r = raw + b * c.P;
    if (k < HW) {
      p.key[b * HW + k] = ntm_tanh(r[k]);
    } else if (k < HW + c.H) {
      const int64_t h = k - HW, bh = b * c.H + h;
      p.beta[bh] = softplus(r[c.off_beta() + h]);
      p.gate[bh] = sigmoid(r[c.off_gate() + h]);
      p.gamma[bh] = T(1) + softplus(r[c.off_gamma() + h]);
      if (c.uniform) {
        shift_uniform_fwd(r[c.off_shift() + h], c.S, p.shift + bh * c.S);
      } else {
        shift_softmax_fwd(r + c.off_shift() + h * c.S, c.S, p.shift + bh * c.S);
      }
    } else if (k < HW + c.H + E) {
      const int64_t i = k - HW - c.H;
      p.erase[b * E + i] = sigmoid(r[c.off_erase() + i]);
    } else {
      const int64_t i = k - HW - c.H - E;
      p.add[b * E + i] = ntm_tanh(r[c.off_add() + i]);
    }
  }
}

template <typename T>
__global__ void heads_grad_kernel(SeqConfig c, const T* raw, HeadPtrs<T> p, HeadPtrs<T> g,
                                  T* d_raw) {
  const int64_t HW = c.H * c.W, E = c.Hw * c.W, per = HW + c.H + 2 * E;
  NTM_GRID_LOOP(idx, c.B * per) {
    const int64_t b = idx / per, k = idx % per;
    const T* r = raw + b * c.P;
    T* d = d_raw + b * c.P;
    if (k < HW) {
      d[k] = tanh_grad(g.key[b * HW + k], p.key[b * HW + k]);
    } else if (k < HW + c.H) {
      const int64_t h = k - HW, bh = b * c.H + h;
      d[c.off_beta() + h] = softplus_grad(g.beta[bh], r[c.off_beta() + h]);
      d[c.off_gate() + h] = sigmoid_grad(g.gate[bh], p.gate[bh]);
      d[c.off_gamma() + h] = softplus_grad(g.gamma[bh], r[c.off_gamma() + h]);
      const T* ds = g.shift + bh * c.S;
      if (c.uniform) {
        d[c.off_shift() + h] = shift_uniform_bwd(r[c.off_shift() + h], ds, c.S);
      } else {
        shift_softmax_bwd(p.shift + bh * c.S, ds, c.S, d + c.off_shift() + h * c.S);
      }
    } else if (k < HW + c.H + E) {
      const int64_t i = k - HW - c.H;
      d[c.off_erase() + i] = sigmoid_grad(g.erase[b * E + i], p.erase[b * E + i]);
    } else {
      const int64_t i = k - HW - c.H - E;
      d[c.off_add() + i] = tanh_grad(g.add[b * E + i], p.add[b * E + i]);
    }
  }
}

template <typename T>
__global__ void lstm_bwd_kernel(const T* act, const T* c_prev, const T* c_new, const T* d_out,
                                int64_t ld, const T* dh, T* dc, T* d_pre, int64_t B, int64_t C) {
  NTM_GRID_LOOP(k, B * C) {
    const int64_t b = k / C, j = k % C;
    dc[k] = lstm_unit_bwd(act + b * 4 * C, C, j, c_prev[k], ntm_tanh(c_new[k]),
                          d_out[b * ld + j] + dh[k], dc[k], d_pre + b * 4 * C);
  }
}

template <typename T>
__global__ void tanh_bwd_kernel(const T* d_out, int64_t ld, const T* y, T* d_pre, int64_t B,
                                int64_t C) {
  NTM_GRID_LOOP(k, B * C) { d_pre[k] = tanh_grad(d_out[(k / C) * ld + k % C], y[k]); }
}

// Per batch row: N*W memory entries, H*N weighting entries, R*W reads.
template <typename T>
__global__ void keep_finished_kernel(const int64_t* len, int64_t t, const T* M_prev, T* M_next,
                                     const T* w_prev, T* w_new, const T* r_new, T* reads,
                                     SeqConfig c) {
  const int64_t NW = c.N * c.W, HN = c.H * c.N, RW = c.R * c.W, per = NW + HN + RW;
  NTM_GRID_LOOP(idx, c.B * per) {
    const int64_t b = idx / per, k = idx % per;
    const bool done = finished(len, t, b);
    if (k < NW) {
      if (done) M_next[b * NW + k] = M_prev[b * NW + k];
    } else if (k < NW + HN) {
      if (done) w_new[b * HN + k - NW] = w_prev[b * HN + k - NW];
    } else if (!done) {
      reads[b * RW + k - NW - HN] = r_new[b * RW + k - NW - HN];
    }
  }
}

// Per batch row: N*W, H*N, R*W, then per layer C of dH and C of dC (stash layout).
template <typename T>
__global__ void carry_finished_kernel(const int64_t* len, int64_t t, bool out, T* stash, T* dM,
                                      T* dW, T* dR, T* dH, T* dC, SeqConfig c) {
  const int64_t NW = c.N * c.W, HN = c.H * c.N, RW = c.R * c.W, fixed = NW + HN + RW;
  const int64_t per = fixed + (c.lstm ? 2 * c.L * c.C : 0);
  NTM_GRID_LOOP(idx, c.B * per) {
    const int64_t b = idx / per, k = idx % per;
    if (!finished(len, t, b)) continue;
    T* state;
    if (k < NW) {
      state = dM + b * NW + k;
    } else if (k < NW + HN) {
      state = dW + b * HN + k - NW;
    } else if (k < fixed) {
      state = dR + b * RW + k - NW - HN;
    } else {
      const int64_t q = k - fixed, l = q / (2 * c.C), j = q % (2 * c.C);
      state = (j < c.C ? dH : dC) + (l * c.B + b) * c.C + j % c.C;
    }
    if (out) {
      stash[idx] = *state;
      *state = T(0);
    } else {
      *state = stash[idx];
    }
  }
}

cudaError_t launched() { return cudaGetLastError(); }

}  // namespace

template <typename T>
cudaError_t Steps<T>::fill_rows(T* dst, const T* row, int64_t rows, int64_t n, cudaStream_t s) {
  fill_rows_kernel<T><<<blocks(rows * n), kThreads, 0, s>>>(dst, row, rows, n);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::add_rows(T* dst, int64_t ldd, const T* a, int64_t lda, const T* b,
                               int64_t ldb, int64_t rows, int64_t n, cudaStream_t s) {
  add_rows_kernel<T><<<blocks(rows * n), kThreads, 0, s>>>(dst, ldd, a, lda, b, ldb, rows, n);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::sum3(T* dst, const T* a, const T* b, const T* c, int64_t n,
                           cudaStream_t s) {
  sum3_kernel<T><<<blocks(n), kThreads, 0, s>>>(dst, a, b, c, n);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::column_sums(const T* a, int64_t rows, int64_t n, T* out, T* scratch,
                                  cudaStream_t s) {
  const int64_t chunks = (rows + kColumnChunk - 1) / kColumnChunk;
  column_sums_kernel<T><<<blocks(chunks * n), kThreads, 0, s>>>(a, rows, n, kColumnChunk,
                                                                 scratch);
  const cudaError_t err = launched();
  if (err != cudaSuccess) return err;
  column_sums_kernel<T><<<blocks(n), kThreads, 0, s>>>(scratch, chunks, n, chunks, out);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::zero_finished(T* a, const int64_t* len, int64_t steps, int64_t B,
                                    int64_t n, cudaStream_t s) {
  zero_finished_kernel<T><<<blocks(steps * B * n), kThreads, 0, s>>>(a, len, B, steps * B * n,
                                                                      n);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::lstm_fwd(T* act, const T* c_prev, T* c_new, T* h, const int64_t* len,
                               int64_t t, int64_t B, int64_t C, cudaStream_t s) {
  lstm_fwd_kernel<T><<<blocks(B * C), kThreads, 0, s>>>(act, c_prev, c_new, h, len, t, B, C);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::tanh_fwd(T* a, int64_t n, cudaStream_t s) {
  tanh_fwd_kernel<T><<<blocks(n), kThreads, 0, s>>>(a, n);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::heads_activate(const SeqConfig& c, const T* raw, HeadPtrs<T> p,
                                     cudaStream_t s) {
  const int64_t per = c.H * c.W + c.H + 2 * c.Hw * c.W;
  heads_activate_kernel<T><<<blocks(c.B * per), kThreads, 0, s>>>(c, raw, p);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::heads_grad(const SeqConfig& c, const T* raw, HeadPtrs<T> p, HeadPtrs<T> g,
                                 T* d_raw, cudaStream_t s) {
  const int64_t per = c.H * c.W + c.H + 2 * c.Hw * c.W;
  heads_grad_kernel<T><<<blocks(c.B * per), kThreads, 0, s>>>(c, raw, p, g, d_raw);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::lstm_bwd(const T* act, const T* c_prev, const T* c_new, const T* d_out,
                               int64_t ld, const T* dh, T* dc, T* d_pre, int64_t B, int64_t C,
                               cudaStream_t s) {
  lstm_bwd_kernel<T><<<blocks(B * C), kThreads, 0, s>>>(act, c_prev, c_new, d_out, ld, dh, dc,
                                                         d_pre, B, C);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::tanh_bwd(const T* d_out, int64_t ld, const T* y, T* d_pre, int64_t B,
                               int64_t C, cudaStream_t s) {
  tanh_bwd_kernel<T><<<blocks(B * C), kThreads, 0, s>>>(d_out, ld, y, d_pre, B, C);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::keep_finished(const int64_t* len, int64_t t, const T* M_prev, T* M_next,
                                    const T* w_prev, T* w_new, const T* r_new, T* reads,
                                    const SeqConfig& c, cudaStream_t s) {
  const int64_t per = c.N * c.W + c.H * c.N + c.R * c.W;
  keep_finished_kernel<T><<<blocks(c.B * per), kThreads, 0, s>>>(len, t, M_prev, M_next, w_prev,
                                                                  w_new, r_new, reads, c);
  return launched();
}

template <typename T>
cudaError_t Steps<T>::carry_finished(const int64_t* len, int64_t t, bool out, T* stash, T* dM,
                                     T* dW, T* dR, T* dH, T* dC, const SeqConfig& c,
                                     cudaStream_t s) {
  const int64_t per = c.N * c.W + c.H * c.N + c.R * c.W + (c.lstm ? 2 * c.L * c.C : 0);
  carry_finished_kernel<T><<<blocks(c.B * per), kThreads, 0, s>>>(len, t, out, stash, dM, dW,
                                                                   dR, dH, dC, c);
  return launched();
}

template struct Steps<float>;
template struct Steps<double>;

}  // namespace cuda
}  // namespace ntm_fast
