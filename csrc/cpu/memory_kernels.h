// CPU kernels of the fused memory ops on raw pointers (contiguous, batch-major), shared by the
// per-op torch bindings (address.cpp, write.cpp) and the whole-sequence loop
// (sequence_*.cpp), so one step's math exists once. Each kernel handles a range of batches
// [b0, b1) (or of (batch, row) items for the row-parallel ones) with caller-provided scratch
// of <kernel>_scratch(...) accumulation-type values: the sequence loop allocates it once per
// call, never per step. T: storage type, A: accumulation type.
#pragma once

#include "rows.h"

namespace ntm_fast {
namespace NTM_CPU_NS {

struct MemDims {
  int64_t B, H, N, W, S;
};

// ---- fused addressing (eqs. 5-9), one batch per item: the row norms are shared by its heads --

// Content addressing's part shared by the forward and the backward, per batch (scale-safe,
// rows.h content_batch_dots): the dots k~_h.M~_i (H*N), row norms |M~_i| and inverse scales
// (N each), key norms |k~_h| and inverse scales (H each), in this order. The sequence loop
// keeps them from the forward (`keep`) so that its backward does not recompute them.
inline int64_t content_keep(const MemDims& d) { return (d.H + 2) * d.N + 2 * d.H; }

inline int64_t address_fwd_scratch(const MemDims& d) {
  return (d.H + 6) * d.N + d.H * d.W + 2 * d.H + d.S + d.W;
}

template <typename T, typename A>
void address_fwd_batches(const T* M, const T* K, const T* be, const T* ga, const T* sh,
                         const T* gm, const T* wp, T* out, const MemDims& d, int64_t b0,
                         int64_t b1, A* buf, A* keep = nullptr) {
  const int64_t H = d.H, N = d.N, W = d.W, S = d.S;
  A *dot = buf, *rn = dot + H * N, *rinv = rn + N, *wc = rinv + N, *wg = wc + N, *wt = wg + N,
    *r = wt + N, *kacc = r + N, *kn = kacc + H * W, *kinv = kn + H, *s = kinv + H,
    *mrow = s + S;
  for (int64_t b = b0; b < b1; ++b) {
    content_batch_dots<T, A>(M + b * N * W, K + b * H * W, H, N, W, kacc, kn, kinv, dot, rn,
                             rinv, mrow);
    if (keep != nullptr) {  // dot, rn, rinv are adjacent, and kn, kinv
      A* k = keep + b * content_keep(d);
      std::copy(dot, dot + (H + 2) * N, k);
      std::copy(kn, kn + 2 * H, k + (H + 2) * N);
    }
    for (int64_t h = 0; h < H; ++h) {
      const int64_t bh = b * H + h;
      const CosineRow<A> cr{dot + h * N, rn, rinv, kn[h], kinv[h]};
      content_row_softmax(cr, static_cast<A>(be[bh]), N, wc);
      const A g = static_cast<A>(ga[bh]);
      const T* wpr = wp + bh * N;
      for (int64_t i = 0; i < N; ++i) wg[i] = interpolate(wc[i], static_cast<A>(wpr[i]), g);
      load_row(sh + bh * S, S, s);
      shift_row_fwd(wg, s, N, S, wt);
      A sum;
      sharpen_row_fwd(wt, static_cast<A>(gm[bh]), N, r, /*out=*/wc, &sum);
      store_row(wc, N, out + bh * N);
    }
  }
}

inline int64_t address_bwd_scratch(const MemDims& d) {
  const int64_t H = d.H, N = d.N, W = d.W, S = d.S;
  return 9 * N + 4 * H * N + 2 * S + 3 * H + 2 * H * W + 2 * W;
}

// Gradients of every addressing input from dL/dw (G); dL/dM summed over heads in head order.
// `keep`: the forward's content_keep values of these batches, else they are recomputed.
template <typename T, typename A>
void address_bwd_batches(const T* G, const T* M, const T* K, const T* be, const T* ga,
                         const T* sh, const T* gm, const T* wp, T* gM, T* gK, T* gB, T* gG,
                         T* gS, T* gY, T* gP, const MemDims& d, int64_t b0, int64_t b1, A* buf,
                         const A* keep = nullptr) {
  const int64_t H = d.H, N = d.N, W = d.W, S = d.S;
  // dots (H*N), rn, rinv, then per head: wc, wg, r(sharpen), w, buffer; ck, cq, cm for every
  // head.
  A *dot = buf, *rn = dot + H * N, *rinv = rn + N, *wc = rinv + N, *wg = wc + N, *r = wg + N,
    *w = r + N, *tmp = w + N, *ck = tmp + N, *cq = ck + H * N, *cm = cq + H * N,
    *s = cm + H * N, *gs = s + S, *coef_key = gs + S, *kn = coef_key + H, *kinv = kn + H,
    *kacc = kinv + H, *gkacc = kacc + H * W, *gmacc = gkacc + H * W, *mrow = gmacc + W,
    *sc = mrow + W;
  for (int64_t b = b0; b < b1; ++b) {
    const T* Mb = M + b * N * W;
    const A *dots = dot, *rns = rn, *rinvs = rinv, *kns = kn, *kinvs = kinv;
    if (keep != nullptr) {
      dots = keep + b * content_keep(d);
      rns = dots + H * N;
      rinvs = rns + N;
      kns = rinvs + N;
      kinvs = kns + H;
      load_row(K + b * H * W, H * W, kacc);  // the rescaled keys k~ (kinv: a power of two)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t m = 0; m < W; ++m) kacc[h * W + m] *= kinvs[h];
    } else {
      content_batch_dots<T, A>(Mb, K + b * H * W, H, N, W, kacc, kn, kinv, dot, rn, rinv, mrow);
    }
    for (int64_t h = 0; h < H; ++h) {
      const int64_t bh = b * H + h;
      const CosineRow<A> cr{dots + h * N, rns, rinvs, kns[h], kinvs[h]};
      // ---- recompute the forward
      const A beta_v = static_cast<A>(be[bh]), g = static_cast<A>(ga[bh]),
              gamma_v = static_cast<A>(gm[bh]);
      content_row_softmax(cr, beta_v, N, wc);
      const T* wpr = wp + bh * N;
      for (int64_t i = 0; i < N; ++i) wg[i] = interpolate(wc[i], static_cast<A>(wpr[i]), g);
      load_row(sh + bh * S, S, s);
      shift_row_fwd(wg, s, N, S, tmp);  // tmp = w~
      A sum;
      const A mx = sharpen_row_fwd(tmp, gamma_v, N, r, w, &sum);
      // ---- backward: sharpen -> shift -> interpolation -> softmax -> cosine
      load_row(G + bh * N, N, tmp);
      gY[bh] = store_grad<T>(sharpen_row_bwd(tmp, r, w, sum, mx, gamma_v, N, tmp, sc));
      shift_row_bwd(tmp, wg, s, N, S, /*gin=*/r, gs);  // r = dL/dwg
      store_grad_row(gs, S, gS + bh * S);
      A* gwc = ck + h * N;
      T* gpr = gP + bh * N;
      const A g1 = A(1) - g;
      for (int64_t i = 0; i < N; ++i) {
        const A gwg = r[i];
        sc[i] = (wc[i] - static_cast<A>(wpr[i])) * gwg;
        gpr[i] = store_grad<T>(g1 * gwg);
        gwc[i] = g * gwg;  // dL/dwc
      }
      gG[bh] = store_grad<T>(vsum(sc, N));
      gB[bh] = store_grad<T>(content_row_softmax_bwd(wc, cr, beta_v, N, gwc, sc));
      coef_key[h] = cosine_row_coefs(cr, N, gwc, cq + h * N, cm + h * N, sc);
    }
    cosine_batch_grads<T, A>(Mb, rinvs, kacc, ck, cq, cm, coef_key, H, N, W, gM + b * N * W,
                             gK + b * H * W, gkacc, gmacc);
  }
}

// ---- write (eqs. 3-4): all erases, then all adds; items are (batch, row) pairs -------------

inline int64_t write_fwd_scratch(const MemDims& d) { return 2 * d.W; }

template <typename T, typename A>
void write_fwd_rows(const T* M, const T* x, const T* E, const T* Ad, T* o, const MemDims& d,
                    int64_t i0, int64_t i1, A* buf) {
  const int64_t H = d.H, N = d.N, W = d.W;
  A *keep = buf, *addv = keep + W;
  for (int64_t bi = i0; bi < i1; ++bi) {
    const int64_t b = bi / N, i = bi % N;
    {  // head 0 initialises the products and sums (no fill pass)
      const A wv = static_cast<A>(x[b * H * N + i]);
      const T *e = E + b * H * W, *a = Ad + b * H * W;
      for (int64_t m = 0; m < W; ++m) {
        keep[m] = erase_factor(wv, static_cast<A>(e[m]));
        addv[m] = wv * static_cast<A>(a[m]);
      }
    }
    for (int64_t h = 1; h < H; ++h) {
      const int64_t bh = b * H + h;
      const A wv = static_cast<A>(x[bh * N + i]);
      const T *e = E + bh * W, *a = Ad + bh * W;
      for (int64_t m = 0; m < W; ++m) {
        keep[m] *= erase_factor(wv, static_cast<A>(e[m]));
        addv[m] += wv * static_cast<A>(a[m]);
      }
    }
    const T* Mi = M + bi * W;
    T* oi = o + bi * W;
    for (int64_t m = 0; m < W; ++m) {
      oi[m] = static_cast<T>(static_cast<A>(Mi[m]) * keep[m] + addv[m]);
    }
  }
}

inline int64_t write_bwd_scratch(const MemDims& d) { return 6 * d.H * d.W + 3 * d.W; }

template <typename A>
struct LaneVec {
  typedef A v __attribute__((vector_size(kLanes * sizeof(A))));
};

// One row of write_bwd_batches with one write head and T == A: the terms of its scalar form
// (erase_factor, write_w_grad_term and write_e_grad_term with others = 1), whole blocks of
// kLanes in vector registers (the scalar form does not vectorise), the rest in lanes m mod
// kLanes as there. Writes dL/dM of the row, adds to the erase/add sums, returns dL/dw.
template <typename A>
A write_bwd_row1(const A* __restrict__ g, const A* __restrict__ mv, A wv, const A* __restrict__ e,
                 const A* __restrict__ a, A* __restrict__ gm, A* __restrict__ gea,
                 A* __restrict__ gaa, int64_t W) {
  using V = typename LaneVec<A>::v;
  auto ld = [](const A* p) {
    V v;
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  auto st = [](A* p, const V& v) { std::memcpy(p, &v, sizeof(v)); };
  V acc = {};
  int64_t m = 0;
  for (; m + kLanes <= W; m += kLanes) {
    const V gv = ld(g + m), Mv = ld(mv + m), ev = ld(e + m);
    st(gm + m, gv * (A(1) - wv * ev));
    acc += gv * (ld(a + m) - Mv * ev);
    st(gea + m, ld(gea + m) + -gv * Mv * wv);
    st(gaa + m, ld(gaa + m) + gv * wv);
  }
  A lanes[kLanes];
  std::memcpy(lanes, &acc, sizeof(acc));
  for (; m < W; ++m) {
    gm[m] = g[m] * erase_factor(wv, e[m]);
    lanes[m % kLanes] += write_w_grad_term(g[m], mv[m], e[m], a[m], A(1));
    gea[m] += write_e_grad_term(g[m], mv[m], wv, A(1));
    gaa[m] += g[m] * wv;
  }
  return lane_total(lanes);
}

// The erase/add gradients sum over rows: one batch per item, rows in order (deterministic).
template <typename T, typename A>
void write_bwd_batches(const T* G, const T* M, const T* x, const T* E, const T* Ad, T* gM,
                       T* gw, T* ge, T* ga, const MemDims& d, int64_t b0, int64_t b1, A* buf) {
  const int64_t H = d.H, N = d.N, W = d.W;
  // e, a (H*W), factors f (H*W), prefix products pre (H*W), ge/ga accumulators (H*W each),
  // suffix (W), g row, M row.
  A *e = buf, *a = e + H * W, *f = a + H * W, *pre = f + H * W, *gea = pre + H * W,
    *gaa = gea + H * W, *suf = gaa + H * W, *gi = suf + W, *mi = gi + W;
  for (int64_t b = b0; b < b1; ++b) {
    load_row(E + b * H * W, H * W, e);
    load_row(Ad + b * H * W, H * W, a);
    std::fill(gea, gea + 2 * H * W, A(0));
    if constexpr (std::is_same_v<T, A>) {
      if (H == 1) {
        for (int64_t row = b * N; row < (b + 1) * N; ++row) {
          gw[row] = write_bwd_row1(G + row * W, M + row * W, x[row], e, a, gM + row * W, gea,
                                   gaa, W);
        }
        store_grad_row(gea, W, ge + b * W);
        store_grad_row(gaa, W, ga + b * W);
        continue;
      }
    }
    if (H == 1) {  // one write head (the common case): the other heads' product is 1
      for (int64_t i = 0; i < N; ++i) {
        const int64_t row = b * N + i;
        const T *Gi = G + row * W, *Mi = M + row * W;
        T* gMi = gM + row * W;
        const A wv = static_cast<A>(x[row]);
        A lanes[kLanes] = {};
        auto term = [&](int64_t m, int64_t lane) {
          const A g = static_cast<A>(Gi[m]), mv = static_cast<A>(Mi[m]);
          gMi[m] = store_grad<T>(g * erase_factor(wv, e[m]));
          lanes[lane] += write_w_grad_term(g, mv, e[m], a[m], A(1));
          gea[m] += write_e_grad_term(g, mv, wv, A(1));
          gaa[m] += g * wv;
        };
        int64_t m = 0;
        for (; m + kLanes <= W; m += kLanes) {  // whole blocks of lanes: vectorisable
          for (int64_t l = 0; l < kLanes; ++l) term(m + l, l);
        }
        for (; m < W; ++m) term(m, m % kLanes);
        gw[row] = store_grad<T>(lane_total(lanes));
      }
      store_grad_row(gea, W, ge + b * W);
      store_grad_row(gaa, W, ga + b * W);
      continue;
    }
    for (int64_t i = 0; i < N; ++i) {
      const int64_t row = b * N + i;
      load_row(G + row * W, W, gi);
      load_row(M + row * W, W, mi);
      // f_h = 1 - w_h e_h; pre_h = prod_{h' < h} f_h'.
      for (int64_t h = 0; h < H; ++h) {
        const A wv = static_cast<A>(x[(b * H + h) * N + i]);
        A *fh = f + h * W, *ph = pre + h * W;
        const A* eh = e + h * W;
        const A* prev = h ? f + (h - 1) * W : nullptr;
        const A* pprev = h ? pre + (h - 1) * W : nullptr;
        for (int64_t m = 0; m < W; ++m) {
          fh[m] = erase_factor(wv, eh[m]);
          ph[m] = h ? pprev[m] * prev[m] : A(1);
        }
      }
      {  // dL/dM = g * prod_h f_h.
        const A *fl = f + (H - 1) * W, *pl = pre + (H - 1) * W;
        T* gMi = gM + row * W;
        for (int64_t m = 0; m < W; ++m) gMi[m] = store_grad<T>(gi[m] * pl[m] * fl[m]);
      }
      std::fill(suf, suf + W, A(1));
      for (int64_t h = H - 1; h >= 0; --h) {
        const int64_t bh = b * H + h;
        const A wv = static_cast<A>(x[bh * N + i]);
        const A *eh = e + h * W, *ah = a + h * W, *fh = f + h * W, *ph = pre + h * W;
        A *geh = gea + h * W, *gah = gaa + h * W;
        A gwv = 0;
        for (int64_t m = 0; m < W; ++m) {
          const A others = ph[m] * suf[m];  // product of the other heads' factors
          gwv += write_w_grad_term(gi[m], mi[m], eh[m], ah[m], others);
          geh[m] += write_e_grad_term(gi[m], mi[m], wv, others);
          gah[m] += gi[m] * wv;
          suf[m] *= fh[m];
        }
        gw[bh * N + i] = store_grad<T>(gwv);
      }
    }
    store_grad_row(gea, H * W, ge + b * H * W);
    store_grad_row(gaa, H * W, ga + b * H * W);
  }
}

}  // namespace NTM_CPU_NS
}  // namespace ntm_fast
