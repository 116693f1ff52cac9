// Convolutions on NCHW tensors with fused bias, activation (ACT), residual add and a second activation (ACT2).
// Weights are packed at plan time so the inner loops read them contiguously; bias is padded likewise.
// Buffers carry slack at their end, so a vector load may run a few elements past a row's end.

#ifndef CB
#define CB 8
#endif

// 1x1 stride-1 convolution = per-group GEMM: each work-item computes CB output channels x 16 pixels.
// x: [N][G*cin][P], w: [G][ncb][cin][CB], bias: [G][ncb*CB], y/res: [N][G*cout][P].
__kernel void conv1x1(__global const T* restrict x, __global const T* restrict w,
                      __global const T* restrict bias, __global const T* restrict res,
                      __global T* restrict y, int cin, int cout, int P, int groups, int has_res,
                      float p0, float p1, float q0, float q1)
{
  const int pb = get_global_id(0) * 16;
  const int cb = get_global_id(1);
  const int ng = get_global_id(2);
  const int ncb = (cout + CB - 1) / CB;
  if (pb >= P || cb >= ncb) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * P + pb;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * CB;
  const __global T* bp = bias + (g * ncb + cb) * CB;
  const size_t ybase = ((size_t)ng * cout + cb * CB) * P + pb;
  if (pb + 16 <= P) {
    float16 acc[CB];
#pragma unroll
    for (int j = 0; j < CB; j++) acc[j] = (float16)(LD(bp, j));
    for (int ci = 0; ci < cin; ci++) {
      const float16 xv = LD16(xp, (size_t)ci * P);
#pragma unroll
      for (int j = 0; j < CB; j++) acc[j] = fma(xv, (float16)(LD(wp, ci * CB + j)), acc[j]);
    }
#pragma unroll
    for (int j = 0; j < CB; j++) {
      if (cb * CB + j < cout) {
        float16 v = acc[j];
        FINISH(v, ybase + (size_t)j * P);
        ST16(y, ybase + (size_t)j * P, v);
      }
    }
  } else {
    for (int p = 0; p < P - pb; p++) {
      float acc[CB];
#pragma unroll
      for (int j = 0; j < CB; j++) acc[j] = LD(bp, j);
      for (int ci = 0; ci < cin; ci++) {
        const float xv = LD(xp, (size_t)ci * P + p);
#pragma unroll
        for (int j = 0; j < CB; j++) acc[j] = fma(xv, LD(wp, ci * CB + j), acc[j]);
      }
      for (int j = 0; j < CB && cb * CB + j < cout; j++) {
        const size_t o = ybase + (size_t)j * P + p;
        float v = ACTIVATE(acc[j], p0, p1);
        if (has_res) v += LD(res, o);
        ST(y, o, ACTIVATE2(v, q0, q1));
      }
    }
  }
}

// Depthwise convolution (group == input channels, `mult` outputs per input channel); KH, KW, SH, SW
// are compile-time so the taps unroll. One work-item computes one output row, 8 pixels at a time.
// x: [N][C][H][W], w: [C*mult][KH*KW], y/res: [N][C*mult][OH][OW].
__kernel void conv_dw(__global const T* restrict x, __global const T* restrict w,
                      __global const T* restrict bias, __global const T* restrict res,
                      __global T* restrict y, int C, int H, int W, int OH, int OW, int mult,
                      int pad_t, int pad_l, int dil_h, int dil_w, int has_res,
                      float p0, float p1, float q0, float q1)
{
  const int oy = get_global_id(0);
  const int nco = get_global_id(1);
  if (oy >= OH) return;
  const int co = nco % (C * mult);
  const int n = nco / (C * mult);
  const __global T* xc = x + ((size_t)n * C + co / mult) * H * W;
  float wk[KH * KW];
#pragma unroll
  for (int k = 0; k < KH * KW; k++) wk[k] = LD(w, co * KH * KW + k);
  const float b = LD(bias, co);
  const size_t ybase = ((size_t)nco * OH + oy) * OW;
  const int iy0 = oy * SH - pad_t;
  for (int ox0 = 0; ox0 < OW; ox0 += 8) {
    float8 acc = (float8)(b);
    const int ix0 = ox0 * SW - pad_l;
    const bool inside = ix0 >= 0 && (ox0 + 7) * SW + (KW - 1) * dil_w - pad_l < W;
#pragma unroll
    for (int ky = 0; ky < KH; ky++) {
      const int iy = iy0 + ky * dil_h;
      if (iy < 0 || iy >= H) continue;
      const __global T* row = xc + (size_t)iy * W;
#pragma unroll
      for (int kx = 0; kx < KW; kx++) {
        const int ix = ix0 + kx * dil_w;
        float8 v;
        if (inside) {
#if SW == 1
          v = LD8(row, ix);
#elif SW == 2
          v = LD16(row, ix).even;
#else
          float t[8];
          for (int l = 0; l < 8; l++) t[l] = LD(row, ix + l * SW);
          v = vload8(0, t);
#endif
        } else {
          float t[8];
          for (int l = 0; l < 8; l++) {
            const int xi = ix + l * SW;
            t[l] = (xi >= 0 && xi < W) ? LD(row, xi) : 0.0f;
          }
          v = vload8(0, t);
        }
        acc = fma(v, (float8)(wk[ky * KW + kx]), acc);
      }
    }
    acc = ACTIVATE(acc, p0, p1);
    if (ox0 + 8 <= OW) {
      if (has_res) acc += LD8(res, ybase + ox0);
      ST8(y, ybase + ox0, ACTIVATE2(acc, q0, q1));
    } else {
      float t[8];
      vstore8(acc, 0, t);
      for (int l = 0; ox0 + l < OW; l++) {
        float v = t[l];
        if (has_res) v += LD(res, ybase + ox0 + l);
        ST(y, ybase + ox0 + l, ACTIVATE2(v, q0, q1));
      }
    }
  }
}

// General grouped / strided / dilated convolution: each work-item computes CB=8 output channels x 8
// pixels of one output row. x: [N][G*cin][H][W], w: [G][ncb][cin][KH][KW][8], y: [N][G*cout][OH][OW].
__kernel void conv_general(__global const T* restrict x, __global const T* restrict w,
                           __global const T* restrict bias, __global const T* restrict res,
                           __global T* restrict y, int cin, int cout, int H, int W, int OH, int OW,
                           int KH, int KW, int SH, int SW, int DH, int DW, int pad_t, int pad_l,
                           int groups, int has_res, float p0, float p1, float q0, float q1)
{
  const int ox0 = get_global_id(0) * 8;
  const int oy = get_global_id(1);
  const int ncb = (cout + 7) / 8;
  const int cb = get_global_id(2) % ncb;
  const int ng = get_global_id(2) / ncb;
  if (ox0 >= OW || oy >= OH) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * KH * KW * 8;
  float8 acc[8];
  for (int j = 0; j < 8; j++) acc[j] = (float8)(LD(bias, (g * ncb + cb) * 8 + j));
  const int ix0 = ox0 * SW - pad_l;
  const bool inside = SW == 1 && ix0 >= 0 && ox0 + 7 + (KW - 1) * DW - pad_l < W;
  for (int ci = 0; ci < cin; ci++) {
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * SH - pad_t + ky * DH;
      if (iy < 0 || iy >= H) continue;
      const __global T* row = xp + ((size_t)ci * H + iy) * W;
      const __global T* wk = wp + ((size_t)(ci * KH + ky) * KW) * 8;
      for (int kx = 0; kx < KW; kx++) {
        const int ix = ix0 + kx * DW;
        float8 v;
        if (inside) {
          v = LD8(row, ix);
        } else {
          float t[8];
          for (int l = 0; l < 8; l++) {
            const int xi = ix + l * SW;
            t[l] = (xi >= 0 && xi < W) ? LD(row, xi) : 0.0f;
          }
          v = vload8(0, t);
        }
        const float8 wv = LD8(wk, kx * 8);
        acc[0] = fma(v, (float8)(wv.s0), acc[0]);
        acc[1] = fma(v, (float8)(wv.s1), acc[1]);
        acc[2] = fma(v, (float8)(wv.s2), acc[2]);
        acc[3] = fma(v, (float8)(wv.s3), acc[3]);
        acc[4] = fma(v, (float8)(wv.s4), acc[4]);
        acc[5] = fma(v, (float8)(wv.s5), acc[5]);
        acc[6] = fma(v, (float8)(wv.s6), acc[6]);
        acc[7] = fma(v, (float8)(wv.s7), acc[7]);
      }
    }
  }
  for (int j = 0; j < 8 && cb * 8 + j < cout; j++) {
    const size_t base = (((size_t)ng * cout + cb * 8 + j) * OH + oy) * OW + ox0;
    float8 v = ACTIVATE(acc[j], p0, p1);
    if (ox0 + 8 <= OW) {
      if (has_res) v += LD8(res, base);
      ST8(y, base, ACTIVATE2(v, q0, q1));
    } else {
      float t[8];
      vstore8(v, 0, t);
      for (int l = 0; ox0 + l < OW; l++) {
        float s = t[l];
        if (has_res) s += LD(res, base + l);
        ST(y, base + l, ACTIVATE2(s, q0, q1));
      }
    }
  }
}

// ConvTranspose as a gather: each work-item computes one output element from the inputs that reach it.
// x: [N][G*cin][H][W], w: [G*cin][cout][KH][KW] (ONNX layout), y: [N][G*cout][OH][OW].
__kernel void conv_transpose(__global const T* restrict x, __global const T* restrict w,
                             __global const T* restrict bias, __global T* restrict y, int cin, int cout,
                             int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int DH, int DW,
                             int pad_t, int pad_l, int groups, float p0, float p1)
{
  const int ox = get_global_id(0);
  const int oy = get_global_id(1);
  const int nco = get_global_id(2);
  if (ox >= OW || oy >= OH) return;
  const int cog = nco % (groups * cout);
  const int n = nco / (groups * cout);
  const int g = cog / cout, co = cog % cout;
  float acc = LD(bias, cog);
  for (int ky = 0; ky < KH; ky++) {
    const int ty = oy + pad_t - ky * DH;
    if (ty < 0 || ty % SH) continue;
    const int iy = ty / SH;
    if (iy >= H) continue;
    for (int kx = 0; kx < KW; kx++) {
      const int tx = ox + pad_l - kx * DW;
      if (tx < 0 || tx % SW) continue;
      const int ix = tx / SW;
      if (ix >= W) continue;
      for (int ci = 0; ci < cin; ci++) {
        const int c = g * cin + ci;
        acc += LD(x, (((size_t)n * groups * cin + c) * H + iy) * W + ix)
             * LD(w, (((size_t)c * cout + co) * KH + ky) * KW + kx);
      }
    }
  }
  ST(y, (((size_t)nco * OH + oy) * OW) + ox, ACTIVATE(acc, p0, p1));
}
