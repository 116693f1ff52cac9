// Recurrent ops (LSTM, GRU, RNN); -DLAYOUT1: batch-major tensors (layout 1). rnn_project computes the input projections X*W^T + Wb of every
// time step at once; rnn_recur then runs the recurrence with one work-group per (batch row, direction), the
// hidden (and cell) state in local memory, a barrier per time step. -DCELL_LSTM / CELL_GRU / CELL_RNN choose the
// cell, -DFACT/GACT/HACT its activations (0 sigmoid, 1 tanh, 2 relu), -DGATES the gate count.

#ifndef FACT
#define FACT 0
#endif
#ifndef GACT
#define GACT 1
#endif
#ifndef HACT
#define HACT 1
#endif

inline float rnn_act(int code, float x) {
  return code == 0 ? 1.0f / (1.0f + EXP(-x)) : code == 1 ? TANH(x) : VMAX(x, 0.0f);
}

inline float rnn_clip(float v, float clip) { return clip > 0.0f ? clamp(v, -clip, clip) : v; }

// xw[d][r][j] = Wb[d][j] + sum_k x[r][k] * w[d][j][k]  (r = t * batch + b, j < G = GATES * H)
__kernel void rnn_project(__global const T* restrict x, __global const T* restrict w,
                          __global const T* restrict b, __global float* restrict xw, int rows, int in, int G,
                          int batch) {
  const int j = get_global_id(0), r = get_global_id(1), d = get_global_id(2);
  if (j >= G || r >= rows) return;
#ifdef LAYOUT1
  const size_t xrow = ((size_t)(r % batch) * (rows / batch) + r / batch) * in;  // x is [batch][seq][in]
#else
  const size_t xrow = (size_t)r * in;
#endif
  const size_t wrow = ((size_t)d * G + j) * in;
  float acc = LD(b, (size_t)d * 2 * G + j);
  for (int k = 0; k < in; ++k) acc += LD(x, xrow + k) * LD(w, wrow + k);
  xw[((size_t)d * rows + r) * G + j] = acc;
}

#ifndef RM
#define RM 4
#endif
// xw as rnn_project, with W packed at plan time as wp[d][ceil(G/16)][in][16]: 16 gates x RM rows per work-item,
// the shape PoCL vectorises (CPU devices).
__kernel void rnn_project16(__global const T* restrict x, __global const T* restrict wp,
                            __global const T* restrict b, __global float* restrict xw, int rows, int in, int G,
                            int batch) {
  const int jb = get_global_id(0), r0 = get_global_id(1) * RM, d = get_global_id(2);
  const int nb = (G + 15) / 16;
  if (jb >= nb || r0 >= rows) return;
  const __global T* wcol = wp + ((size_t)d * nb + jb) * in * 16;
  float16 acc[RM];
  const __global T* xr[RM];
  for (int i = 0; i < RM; i++) {
    const int r = min(r0 + i, rows - 1);
    acc[i] = (float16)(0.0f);
#ifdef LAYOUT1
    xr[i] = x + ((size_t)(r % batch) * (rows / batch) + r / batch) * in;
#else
    xr[i] = x + (size_t)r * in;
#endif
  }
  for (int k = 0; k < in; k++) {
    const float16 wv = LD16(wcol, k * 16);
    for (int i = 0; i < RM; i++) acc[i] = MULADD((float16)(LD(xr[i], k)), wv, acc[i]);
  }
  for (int i = 0; i < RM && r0 + i < rows; i++) {
    float t[16];
    PST16(t, acc[i]);
    for (int l = 0; l < 16 && jb * 16 + l < G; l++) {
      const int j = jb * 16 + l;
      xw[((size_t)d * rows + r0 + i) * G + j] = t[l] + LD(b, (size_t)d * 2 * G + j);
    }
  }
}

// dot(R[d][row], v) over H, 16 lanes at a time: one work-item walks a whole row, so explicit vectors are what
// makes it fast on CPUs (PoCL cannot vectorise across work-items reading rows H apart): 7x on a captcha model's LSTM.
inline float rnn_dot(__global const T* restrict r, size_t row, __local const float* v, int H) {
  float16 acc16 = (float16)(0.0f);
  int k = 0;
  for (; k + 16 <= H; k += 16) acc16 = MULADD(LD16(r, row + k), PLD16(v + k), acc16);
  const float8 a8 = acc16.lo + acc16.hi;
  const float4 a4 = a8.lo + a8.hi;
  float acc = (a4.x + a4.y) + (a4.z + a4.w);
  for (; k < H; ++k) acc += LD(r, row + k) * v[k];
  return acc;
}

__kernel void rnn_recur(__global const float* restrict xw, __global const T* restrict r,
                        __global const T* restrict b, __global const T* restrict p,
                        __global const T* restrict h0, __global const T* restrict c0,
                        __global const int* restrict lens, __global T* restrict y, __global T* restrict yh,
                        __global T* restrict yc, int seq, int batch, int H, int flags, float clip,
                        __local float* h, __local float* c, __local float* hn, __local float* cn) {
  // flags: 1 reverse (direction 0), 2 has h0, 4 has c0, 8 has peepholes, 16 input_forget / linear_before_reset,
  // 32 write y, 64 write yh, 128 write yc
  const int lid = get_local_id(0), L = get_local_size(0);
  const int bi = get_group_id(1), d = get_group_id(2), dirs = get_num_groups(2);
  const int G = GATES * H, rows = seq * batch, len = lens[bi];
  const bool rev = (flags & 1) || d == 1;
#ifdef LAYOUT1
  const size_t state = ((size_t)bi * dirs + d) * H;  // states are [batch][dirs][H]
#else
  const size_t state = ((size_t)d * batch + bi) * H;
#endif
  const size_t rbase = (size_t)d * G * H, bbase = (size_t)d * 2 * G + G;
  for (int u = lid; u < H; u += L) {
    h[u] = (flags & 2) ? LD(h0, state + u) : 0.0f;
    c[u] = (flags & 4) ? LD(c0, state + u) : 0.0f;
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int s = 0; s < seq; ++s) {
    const int t = rev ? seq - 1 - s : s;
    const bool live = t < len;
    const __global float* g = xw + ((size_t)d * rows + (size_t)t * batch + bi) * G;
#if defined(CELL_GRU)
    // z and r first: the candidate needs r * h (or r * (R_h h + Rb_h)) of every unit.
    for (int u = lid; u < H; u += L) {
      const float z = rnn_act(FACT, rnn_clip(g[u] + rnn_dot(r, rbase + (size_t)u * H, h, H) + LD(b, bbase + u), clip));
      const float rg = rnn_act(FACT, rnn_clip(g[H + u] + rnn_dot(r, rbase + (size_t)(H + u) * H, h, H)
                                              + LD(b, bbase + H + u), clip));
      cn[u] = z;
      hn[u] = (flags & 16) ? rg : rg * h[u];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int u = lid; u < H; u += L) {
      const size_t row = rbase + (size_t)(2 * H + u) * H;
      const float rb = LD(b, bbase + 2 * H + u);
      float cand;
      if (flags & 16) cand = g[2 * H + u] + hn[u] * (rnn_dot(r, row, h, H) + rb);
      else cand = g[2 * H + u] + rnn_dot(r, row, hn, H) + rb;
      const float z = cn[u];
      cn[u] = (1.0f - z) * rnn_act(GACT, rnn_clip(cand, clip)) + z * h[u];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int u = lid; u < H; u += L) hn[u] = cn[u];
#elif defined(CELL_LSTM)
    for (int u = lid; u < H; u += L) {
      float gi = g[u] + rnn_dot(r, rbase + (size_t)u * H, h, H) + LD(b, bbase + u);
      float go = g[H + u] + rnn_dot(r, rbase + (size_t)(H + u) * H, h, H) + LD(b, bbase + H + u);
      float gf = g[2 * H + u] + rnn_dot(r, rbase + (size_t)(2 * H + u) * H, h, H) + LD(b, bbase + 2 * H + u);
      float gc = g[3 * H + u] + rnn_dot(r, rbase + (size_t)(3 * H + u) * H, h, H) + LD(b, bbase + 3 * H + u);
      const size_t pb = (size_t)d * 3 * H;
      const float pi = (flags & 8) ? LD(p, pb + u) : 0.0f, po = (flags & 8) ? LD(p, pb + H + u) : 0.0f;
      const float pf = (flags & 8) ? LD(p, pb + 2 * H + u) : 0.0f;
      const float i = rnn_act(FACT, rnn_clip(gi + pi * c[u], clip));
      const float f = (flags & 16) ? 1.0f - i : rnn_act(FACT, rnn_clip(gf + pf * c[u], clip));
      const float cnew = f * c[u] + i * rnn_act(GACT, rnn_clip(gc, clip));
      const float o = rnn_act(FACT, rnn_clip(go + po * cnew, clip));
      cn[u] = cnew;
      hn[u] = o * rnn_act(HACT, cnew);
    }
#else
    for (int u = lid; u < H; u += L)
      hn[u] = rnn_act(FACT, rnn_clip(g[u] + rnn_dot(r, rbase + (size_t)u * H, h, H) + LD(b, bbase + u), clip));
#endif
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int u = lid; u < H; u += L) {
      if (live) {
        h[u] = hn[u];
#if defined(CELL_LSTM)
        c[u] = cn[u];
#endif
      }
#ifdef LAYOUT1
      const size_t yi = (((size_t)bi * seq + t) * dirs + d) * H + u;  // y is [batch][seq][dirs][H]
#else
      const size_t yi = (((size_t)t * dirs + d) * batch + bi) * H + u;
#endif
      if (flags & 32) ST(y, yi, live ? hn[u] : 0.0f);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  for (int u = lid; u < H; u += L) {
    if (flags & 64) ST(yh, state + u, h[u]);
    if (flags & 128) ST(yc, state + u, c[u]);
  }
}
