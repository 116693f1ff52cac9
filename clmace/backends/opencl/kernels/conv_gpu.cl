// GPU-shaped convolution variants (NCHW, fused bias / ACT / residual / ACT2 as in conv.cl). Many small
// work-items instead of few long ones: consecutive work-items along dimension 0 handle consecutive output
// pixels, so their loads and stores of activations coalesce, and work-items of one group share the same
// output channels, so their weight reads are broadcasts. Every dimension of the range is bounds-checked.

// Each program holds one kernel, picked by its defines: CONV1X1_PIX -> conv1x1_pix, DW_PIX -> conv_dw_pix,
// GENERAL_PIX -> conv_general_pix, CONV_TILED -> conv_tiled.

// Bias + ACT, optional residual, ACT2, one store.
#define EPILOGUE(acc, bias_v, o)                     \
  do {                                               \
    float v_ = ACTIVATE((acc) + (bias_v), p0, p1);   \
    if (has_res) v_ += LD(res, (o));                 \
    ST(y, (o), ACTIVATE2(v_, q0, q1));               \
  } while (0)

#ifdef CONV1X1_PIX
// 1x1 stride-1 convolution, one pixel x CB output channels per work-item; range (P, ncb, N*G).
// x: [N][G*cin][P], w: [G][ncb][cin][CB] (conv.cl's packing), bias: [G][ncb*CB], y/res: [N][G*cout][P].
__kernel void conv1x1_pix(__global const T* restrict x, __global const T* restrict w,
                          __global const T* restrict bias, __global const T* restrict res,
                          __global T* restrict y, int cin, int cout, int P, int groups, int NG, int has_res,
                          float p0, float p1, float q0, float q1)
{
  const int p = get_global_id(0);
  const int cb = get_global_id(1);
  const int ng = get_global_id(2);
  const int ncb = (cout + CB - 1) / CB;
  if (p >= P || cb >= ncb || ng >= NG) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * P + p;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * CB;
  float acc[CB];
#pragma unroll
  for (int j = 0; j < CB; j++) acc[j] = 0.0f;
  for (int ci = 0; ci < cin; ci++) {
    const float xv = LD(xp, (size_t)ci * P);
#pragma unroll
    for (int j = 0; j < CB; j++) acc[j] = MULADD(xv, LD(wp, ci * CB + j), acc[j]);
  }
  const size_t ybase = ((size_t)ng * cout + cb * CB) * P + p;
#pragma unroll
  for (int j = 0; j < CB; j++) {
    if (cb * CB + j < cout) EPILOGUE(acc[j], LD(bias, (g * ncb + cb) * CB + j), ybase + (size_t)j * P);
  }
}
#endif

#ifdef DW_PIX
// Depthwise convolution (`mult` outputs per input channel), OPX consecutive output pixels of one row per
// work-item; range (ceil(OW/OPX), OH, N*C*mult). KH, KW, SH, SW are compile-time so the taps unroll.
// x: [N][C][H][W], w: [C*mult][KH*KW], y/res: [N][C*mult][OH][OW].
__kernel void conv_dw_pix(__global const T* restrict x, __global const T* restrict w,
                          __global const T* restrict bias, __global const T* restrict res,
                          __global T* restrict y, int C, int H, int W, int OH, int OW, int mult,
                          int pad_t, int pad_l, int dil_h, int dil_w, int NCO, int has_res,
                          float p0, float p1, float q0, float q1)
{
  const int ox0 = get_global_id(0) * OPX;
  const int oy = get_global_id(1);
  const int nco = get_global_id(2);
  if (ox0 >= OW || oy >= OH || nco >= NCO) return;
  const int co = nco % (C * mult);
  const int n = nco / (C * mult);
  const __global T* xc = x + ((size_t)n * C + co / mult) * H * W;
  const __global T* wk = w + co * KH * KW;
  float acc[OPX];
#pragma unroll
  for (int l = 0; l < OPX; l++) acc[l] = 0.0f;
#pragma unroll
  for (int ky = 0; ky < KH; ky++) {
    const int iy = oy * SH - pad_t + ky * dil_h;
    if (iy < 0 || iy >= H) continue;
    const __global T* row = xc + (size_t)iy * W;
#pragma unroll
    for (int kx = 0; kx < KW; kx++) {
      const float wv = LD(wk, ky * KW + kx);
#pragma unroll
      for (int l = 0; l < OPX; l++) {
        const int ix = (ox0 + l) * SW - pad_l + kx * dil_w;
        const float v = (ix >= 0 && ix < W) ? LD(row, ix) : 0.0f;
        acc[l] = MULADD(v, wv, acc[l]);
      }
    }
  }
  const float b = LD(bias, co);
  const size_t ybase = ((size_t)nco * OH + oy) * OW + ox0;
#pragma unroll
  for (int l = 0; l < OPX; l++) {
    if (ox0 + l < OW) EPILOGUE(acc[l], b, ybase + l);
  }
}
#endif

#ifdef GENERAL_PIX
// General grouped / strided / dilated convolution, one output pixel x CB output channels per work-item;
// range (OH*OW, ncb, N*G). x: [N][G*cin][H][W], w: [G][ncb][cin][KH][KW][CB], y/res: [N][G*cout][OH][OW].
__kernel void conv_general_pix(__global const T* restrict x, __global const T* restrict w,
                               __global const T* restrict bias, __global const T* restrict res,
                               __global T* restrict y, int cin, int cout, int H, int W, int OH, int OW,
                               int KH, int KW, int SH, int SW, int DH, int DW, int pad_t, int pad_l,
                               int groups, int NG, int has_res, float p0, float p1, float q0, float q1)
{
  const int p = get_global_id(0);
  const int cb = get_global_id(1);
  const int ng = get_global_id(2);
  const int ncb = (cout + CB - 1) / CB;
  if (p >= OH * OW || cb >= ncb || ng >= NG) return;
  const int g = ng % groups;
  const int oy = p / OW, ox = p % OW;
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * KH * KW * CB;
  float acc[CB];
#pragma unroll
  for (int j = 0; j < CB; j++) acc[j] = 0.0f;
  for (int ci = 0; ci < cin; ci++) {
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * SH - pad_t + ky * DH;
      if (iy < 0 || iy >= H) continue;
      const __global T* row = xp + ((size_t)ci * H + iy) * W;
      const __global T* wr = wp + ((size_t)(ci * KH + ky) * KW) * CB;
      for (int kx = 0; kx < KW; kx++) {
        const int ix = ox * SW - pad_l + kx * DW;
        if (ix < 0 || ix >= W) continue;
        const float v = LD(row, ix);
#pragma unroll
        for (int j = 0; j < CB; j++) acc[j] = MULADD(v, LD(wr, kx * CB + j), acc[j]);
      }
    }
  }
  const size_t ybase = ((size_t)ng * cout + cb * CB) * OH * OW + p;
#pragma unroll
  for (int j = 0; j < CB; j++) {
    if (cb * CB + j < cout) EPILOGUE(acc[j], LD(bias, (g * ncb + cb) * CB + j), ybase + (size_t)j * OH * OW);
  }
}
#endif

#ifdef CONV_TILED
// Convolution as an implicit GEMM: Y[ng][co][p] = sum_k Wt[g][k][co] * X(ng, k, p) with k = (ci, ky, kx)
// and p = (oy, ox). A 16x16 work-group computes a TM x TN tile (TM = 16*WM channels, TN = 16*WN pixels),
// stepping through K by TK through __local tiles. Work-item (tx, ty) owns channels ty + 16*i and pixels
// tx + 16*j: its pixel loads and stores coalesce along tx, and its weight reads from __local broadcast.
// PW marks a 1x1 stride-1 unpadded conv (X(k, p) = x[k][p]). Range (ceil(P/TN)*16, ceil(cout/TM)*16, N*G).
// wt: [G][K][cout] (the weights transposed, so tile loads coalesce along channels); bias: [G*cout].
#define TK 16
#define TM (16 * WM)
#define TN (16 * WN)
__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void conv_tiled(__global const T* restrict x, __global const T* restrict wt, __global const T* restrict bias,
                __global const T* restrict res, __global T* restrict y, int cin, int cout,
                int H, int W, int OH, int OW, int SH, int SW, int DH, int DW, int pad_t, int pad_l, int groups,
                int NG, int has_res, float p0, float p1, float q0, float q1)
{
  __local float ls[TK][TM];
  __local float rs[TK][TN];
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int lid = ty * 16 + tx;
  const int pix0 = get_group_id(0) * TN;
  const int co0 = get_group_id(1) * TM;
  const int ng = get_global_id(2);
  const int P = OH * OW;
  const int K = cin * KH * KW;
  if (ng >= NG || co0 >= cout) return;  // whole groups only: no barrier is skipped by part of a group
  const int g = ng % groups;
  const __global T* xg = x + (size_t)ng * cin * H * W;
  const __global T* wg = wt + (size_t)g * K * cout;
  // This work-item always loads pixel column `col` of the X tile (TN divides 256).
  const int col = lid % TN;
  const int pix = pix0 + col;
  const int oy = pix / OW, ox = pix - (pix / OW) * OW;
  float acc[WM][WN];
#pragma unroll
  for (int i = 0; i < WM; i++)
#pragma unroll
    for (int j = 0; j < WN; j++) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TK) {
#pragma unroll
    for (int i = 0; i < WM; i++) {
      const int e = lid + 256 * i;
      const int k = k0 + e / TM, co = co0 + e % TM;
      ls[e / TM][e % TM] = (k < K && co < cout) ? LD(wg, (size_t)k * cout + co) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < WN; j++) {
      const int kk = lid / TN + j * (256 / TN);
      const int k = k0 + kk;
      float v = 0.0f;
#ifdef PW
      if (k < K && pix < P) v = LD(xg, (size_t)k * P + pix);
#else
      if (k < K && pix < P) {
        const int ci = k / (KH * KW);
        const int r = k - ci * (KH * KW);
        const int ky = r / KW, kx = r - (r / KW) * KW;
        const int iy = oy * SH - pad_t + ky * DH, ix = ox * SW - pad_l + kx * DW;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = LD(xg, ((size_t)ci * H + iy) * W + ix);
      }
#endif
      rs[kk][col] = v;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int kk = 0; kk < TK; kk++) {
      float a[WM], b[WN];
#pragma unroll
      for (int i = 0; i < WM; i++) a[i] = ls[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < WN; j++) b[j] = rs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < WM; i++)
#pragma unroll
        for (int j = 0; j < WN; j++) acc[i][j] = MULADD(a[i], b[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#pragma unroll
  for (int i = 0; i < WM; i++) {
    const int co = co0 + ty + 16 * i;
    if (co >= cout) continue;
    const float bv = LD(bias, g * cout + co);
    const size_t ybase = ((size_t)ng * cout + co) * P;
#pragma unroll
    for (int j = 0; j < WN; j++) {
      const int p = pix0 + tx + 16 * j;
      if (p < P) EPILOGUE(acc[i][j], bv, ybase + p);
    }
  }
}
#endif
