// Convolutions on NCHW tensors with fused bias, activation (ACT), residual add and a second activation (ACT2).
// Weights are packed at plan time so the inner loops read them contiguously; bias is padded likewise.
// Every buffer has slack before and after its data, so a vector load may run a little past either end
// of a row: such lanes are then zeroed by a vector select.

// Each program holds one kernel, picked by its defines: CB -> conv1x1, KH -> conv_dw,
// CONV_GENERAL -> conv_general, CONV_TRANSPOSE -> conv_transpose, CONV_TRANSPOSE_BLOCK -> conv_transpose_block.
// These are the CPU-shaped variants (long vectors, many outputs per work-item; conv_transpose is the plain
// one-output-per-work-item gather that GPUs use); conv_gpu.cl holds the GPU-shaped ones. Every dimension of the
// global range is bounds-checked, so any local size (the range rounded up to it) is safe.

// Eight input pixels row[ix + l * sw] (l = 0..7), zero where outside [0, W). Whole-vector loads when the
// block lies inside the row, or when the buffer slack covers the overrun (vec_ok, decided at plan time);
// otherwise clamped scalar loads.
__attribute__((always_inline)) inline float8 load_row8(const __global T* row, int ix, int sw, int W, bool inside, int vec_ok)
{
  float8 v;
  if (inside || vec_ok) {
    if (sw == 1) {
      v = LD8(row, ix);
    } else if (sw == 2) {
      v = LD16(row, ix).even;
    } else {
      float t[8];
      for (int l = 0; l < 8; l++) t[l] = LD(row, ICLAMP(ix + l * sw, 0, W - 1));
      v = PLD8(t);
    }
  } else {
    float t[8];
    for (int l = 0; l < 8; l++) t[l] = LD(row, ICLAMP(ix + l * sw, 0, W - 1));
    v = PLD8(t);
  }
  if (!inside) {
    const int8 xi = (int8)(0, 1, 2, 3, 4, 5, 6, 7) * sw + ix;
    v = (xi >= 0) & (xi < W) ? v : (float8)(0.0f);
  }
  return v;
}

// Sixteen input pixels, as load_row8.
__attribute__((always_inline)) inline float16 load_row16(const __global T* row, int ix, int sw, int W, bool inside, int vec_ok)
{
  float16 v;
  if ((inside || vec_ok) && sw <= 2) {
    if (sw == 1) {
      v = LD16(row, ix);
    } else {
      v = (float16)(LD16(row, ix).even, LD16(row, ix + 16).even);
    }
  } else {
    float t[16];
    for (int l = 0; l < 16; l++) t[l] = LD(row, ICLAMP(ix + l * sw, 0, W - 1));
    v = PLD16(t);
  }
  if (!inside) {
    const int16 xi = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * sw + ix;
    v = (xi >= 0) & (xi < W) ? v : (float16)(0.0f);
  }
  return v;
}

// The end of a work-item holding NCB channel vectors acc[j] of NPX pixels of output row oy from ox0: activation,
// fused residual, second activation, a vector store (lane by lane past the row's end). Shared by conv_general
// and conv_fixed, whose variables it names.
#define STORE_ROW_BLOCKS(NPX, NCB) \
  for (int j = 0; j < (NCB) && cb * (NCB) + j < cout; j++) { \
    const size_t base = (((size_t)ng * cout + cb * (NCB) + j) * OH + oy) * OW + ox0; \
    CAT(float, NPX) v = ACTIVATE(acc[j], p0, p1); \
    if (ox0 + (NPX) <= OW) { \
      if (has_res) v += CAT(LD, NPX)(res, base); \
      CAT(ST, NPX)(y, base, ACTIVATE2(v, q0, q1)); \
    } else { \
      float t[NPX]; \
      CAT(PST, NPX)(t, v); \
      for (int l = 0; ox0 + l < OW; l++) { \
        float s = t[l]; \
        if (has_res) s += LD(res, base + l); \
        ST(y, base + l, ACTIVATE2(s, q0, q1)); \
      } \
    } \
  }

#ifdef CB
#ifndef PX
#define PX 16
#endif
#define FPX CAT(float, PX)
#define LDPX CAT(LD, PX)
#define STPX CAT(ST, PX)
// 1x1 stride-1 convolution = per-group GEMM: each work-item computes CB output channels x PX pixels.
// x: [N][G*cin][P], w: [G][ncb][cin][CB], bias: [G][ncb*CB], y/res: [N][G*cout][P].
__kernel void conv1x1(__global const T* restrict x, __global const T* restrict w,
                      __global const T* restrict bias, __global const T* restrict res,
                      __global T* restrict y, int cin, int cout, int P, int groups, int NG, int has_res,
                      float p0, float p1, float q0, float q1)
{
  const int pb = get_global_id(0) * PX;
  const int cb = get_global_id(1);
  const int ng = get_global_id(2);
  const int ncb = (cout + CB - 1) / CB;
  if (pb >= P || cb >= ncb || ng >= NG) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * P + pb;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * CB;
  const __global T* bp = bias + (g * ncb + cb) * CB;
  const size_t ybase = ((size_t)ng * cout + cb * CB) * P + pb;
  if (pb + PX <= P) {
    FPX acc[CB];
#pragma unroll
    for (int j = 0; j < CB; j++) acc[j] = (FPX)(LD(bp, j));
    for (int ci = 0; ci < cin; ci++) {
      const FPX xv = LDPX(xp, (size_t)ci * P);
#pragma unroll
      for (int j = 0; j < CB; j++) acc[j] = MULADD(xv, (FPX)(LD(wp, ci * CB + j)), acc[j]);
    }
#pragma unroll
    for (int j = 0; j < CB; j++) {
      if (cb * CB + j < cout) {
        FPX v = ACTIVATE(acc[j], p0, p1);
        if (has_res) v += LDPX(res, ybase + (size_t)j * P);
        STPX(y, ybase + (size_t)j * P, ACTIVATE2(v, q0, q1));
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
        for (int j = 0; j < CB; j++) acc[j] = MULADD(xv, LD(wp, ci * CB + j), acc[j]);
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

#endif

#ifdef KH
// Depthwise convolution (group == input channels, `mult` outputs per input channel); KH, KW, SH, SW
// are compile-time so the taps unroll. One work-item computes `rows` output rows, 16 pixels at a time.
// Border pixels load whole vectors too and zero the lanes outside the row (buffers have slack on both
// sides), so there is no scalar path. x: [N][C][H][W], w: [C*mult][KH*KW], y/res: [N][C*mult][OH][OW].
__kernel void conv_dw(__global const T* restrict x, __global const T* restrict w,
                      __global const T* restrict bias, __global const T* restrict res,
                      __global T* restrict y, int C, int H, int W, int OH, int OW, int mult,
                      int pad_t, int pad_l, int dil_h, int dil_w, int rows, int vec_ok, int NCO, int has_res,
                      float p0, float p1, float q0, float q1)
{
  const int oy_first = get_global_id(0) * rows;
  const int nco = get_global_id(1);
  if (oy_first >= OH || nco >= NCO) return;
  const int co = nco % (C * mult);
  const int n = nco / (C * mult);
  const __global T* xc = x + ((size_t)n * C + co / mult) * H * W;
  float wk[KH * KW];
#pragma unroll
  for (int k = 0; k < KH * KW; k++) wk[k] = LD(w, co * KH * KW + k);
  const float b = LD(bias, co);
  const int oy_end = min(oy_first + rows, OH);
  for (int oy = oy_first; oy < oy_end; oy++) {
    const size_t ybase = ((size_t)nco * OH + oy) * OW;
    const int iy0 = oy * SH - pad_t;
    for (int ox0 = 0; ox0 < OW; ox0 += 16) {
      // One partial sum per kernel row: KH independent FMA chains instead of one long one.
      float16 part[KH];
      const int ix0 = ox0 * SW - pad_l;
      const bool inside = ix0 >= 0 && (ox0 + 15) * SW + (KW - 1) * dil_w - pad_l < W;
      const bool fast = inside || vec_ok;
      // Lanes inside the row, per kernel column; the same for every kernel row.
      int16 keep[KW];
#pragma unroll
      for (int kx = 0; kx < KW; kx++) {
        const int16 xi = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15) * SW + ix0 + kx * dil_w;
        keep[kx] = (xi >= 0) & (xi < W);
      }
#pragma unroll
      for (int ky = 0; ky < KH; ky++) {
        part[ky] = (float16)(0.0f);
        const int iy = iy0 + ky * dil_h;
        if (iy < 0 || iy >= H) continue;
        const __global T* row = xc + (size_t)iy * W;
#pragma unroll
        for (int kx = 0; kx < KW; kx++) {
          const int ix = ix0 + kx * dil_w;
          float16 v;
          if (fast) {
#if SW == 1
            v = LD16(row, ix);
#elif SW == 2
            v = (float16)(LD16(row, ix).even, LD16(row, ix + 16).even);
#else
            v = load_row16(row, ix, SW, W, true, 0);
#endif
          } else {
            v = load_row16(row, ix, SW, W, true, 0);
          }
          if (!inside) v = keep[kx] ? v : (float16)(0.0f);
          part[ky] = MULADD(v, (float16)(wk[ky * KW + kx]), part[ky]);
        }
      }
      float16 acc = (float16)(b);
#pragma unroll
      for (int ky = 0; ky < KH; ky++) acc += part[ky];
      acc = ACTIVATE(acc, p0, p1);
      if (ox0 + 16 <= OW) {
        if (has_res) acc += LD16(res, ybase + ox0);
        ST16(y, ybase + ox0, ACTIVATE2(acc, q0, q1));
      } else {
        float t[16];
        PST16(t, acc);
        for (int l = 0; ox0 + l < OW; l++) {
          float v = t[l];
          if (has_res) v += LD(res, ybase + ox0 + l);
          ST(y, ybase + ox0 + l, ACTIVATE2(v, q0, q1));
        }
      }
    }
  }
}
#endif

#ifdef CONV_GENERAL
// General grouped / strided / dilated convolution: each work-item computes CB=8 output channels x GPX (8, or
// 16 for AVX-512-wide vectors) pixels of one output row. x: [N][G*cin][H][W], w: [G][ncb][cin][KH][KW][8],
// y: [N][G*cout][OH][OW].
#ifndef GPX
#define GPX 8
#endif
#define GV CAT(float, GPX)
#define GLOAD CAT(load_row, GPX)
__kernel void conv_general(__global const T* restrict x, __global const T* restrict w,
                           __global const T* restrict bias, __global const T* restrict res,
                           __global T* restrict y, int cin, int cout, int H, int W, int OH, int OW,
                           int KH, int KW, int SH, int SW, int DH, int DW, int pad_t, int pad_l,
                           int groups, int vec_ok, int NG, int has_res, float p0, float p1, float q0, float q1)
{
  const int ox0 = get_global_id(0) * GPX;
  const int oy = get_global_id(1);
  const int ncb = (cout + 7) / 8;
  const int cb = get_global_id(2) % ncb;
  const int ng = get_global_id(2) / ncb;
  if (ox0 >= OW || oy >= OH || ng >= NG) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * KH * KW * 8;
  GV acc[8];
  for (int j = 0; j < 8; j++) acc[j] = (GV)(LD(bias, (g * ncb + cb) * 8 + j));
  const int ix0 = ox0 * SW - pad_l;
  const bool inside = ix0 >= 0 && (ox0 + GPX - 1) * SW + (KW - 1) * DW - pad_l < W;
  for (int ci = 0; ci < cin; ci++) {
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * SH - pad_t + ky * DH;
      if (iy < 0 || iy >= H) continue;
      const __global T* row = xp + ((size_t)ci * H + iy) * W;
      const __global T* wk = wp + ((size_t)(ci * KH + ky) * KW) * 8;
      for (int kx = 0; kx < KW; kx++) {
        const int ix = ix0 + kx * DW;
        const GV v = GLOAD(row, ix, SW, W, inside, vec_ok);
        const float8 wv = LD8(wk, kx * 8);
        acc[0] = MULADD(v, (GV)(wv.s0), acc[0]);
        acc[1] = MULADD(v, (GV)(wv.s1), acc[1]);
        acc[2] = MULADD(v, (GV)(wv.s2), acc[2]);
        acc[3] = MULADD(v, (GV)(wv.s3), acc[3]);
        acc[4] = MULADD(v, (GV)(wv.s4), acc[4]);
        acc[5] = MULADD(v, (GV)(wv.s5), acc[5]);
        acc[6] = MULADD(v, (GV)(wv.s6), acc[6]);
        acc[7] = MULADD(v, (GV)(wv.s7), acc[7]);
      }
    }
  }
  STORE_ROW_BLOCKS(GPX, 8);
}

#endif

#ifdef CONV_TRANSPOSE
// ConvTranspose as a gather: each work-item computes one output element from the inputs that reach it.
// x: [N][G*cin][H][W], w: [G*cin][cout][KH][KW] (ONNX layout), y: [N][G*cout][OH][OW].
__kernel void conv_transpose(__global const T* restrict x, __global const T* restrict w,
                             __global const T* restrict bias, __global T* restrict y, int cin, int cout,
                             int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int DH, int DW,
                             int pad_t, int pad_l, int groups, int NG, float p0, float p1)
{
  const int ox = get_global_id(0);
  const int oy = get_global_id(1);
  const int nco = get_global_id(2);
  if (ox >= OW || oy >= OH || nco >= NG * cout) return;
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
#endif

#ifdef CONV_TRANSPOSE_BLOCK
// ConvTranspose for CPUs: each work-item computes 8 output channels x 8 output pixels of one row that share
// their phase along x (ox = ox0 + l * SW), so every tap reads 8 consecutive input pixels as one vector and
// adds them into 8 channel accumulators (the gather kernel above does one scalar product per output).
// x: [N][G*cin][H][W], w: [G][ncb][cin][KH][KW][8] (pack_blocks of the per-group [cout][cin] weight),
// bias: [G][ncb*8], y: [N][G*cout][OH][OW]. Range: (SW * ceil(ceil(OW / SW) / 8), OH, NG * ncb).
__kernel void conv_transpose_block(__global const T* restrict x, __global const T* restrict w,
                                   __global const T* restrict bias, __global T* restrict y, int cin, int cout,
                                   int H, int W, int OH, int OW, int KH, int KW, int SH, int SW, int DH, int DW,
                                   int pad_t, int pad_l, int groups, int NG, float p0, float p1)
{
  const int rx = get_global_id(0) % SW;
  const int ox0 = rx + get_global_id(0) / SW * 8 * SW;
  const int oy = get_global_id(1);
  const int ncb = (cout + 7) / 8;
  const int cb = get_global_id(2) % ncb;
  const int ng = get_global_id(2) / ncb;
  if (ox0 >= OW || oy >= OH || ng >= NG) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * KH * KW * 8;
  float8 acc[8];
  for (int j = 0; j < 8; j++) acc[j] = (float8)(LD(bias, (g * ncb + cb) * 8 + j));
  for (int ky = 0; ky < KH; ky++) {
    const int ty = oy + pad_t - ky * DH;
    if (ty < 0 || ty % SH) continue;
    const int iy = ty / SH;
    if (iy >= H) continue;
    for (int kx = 0; kx < KW; kx++) {
      const int tx = ox0 + pad_l - kx * DW;
      // Every lane has the same phase, so a tap reaches all 8 pixels or none of them.
      if (tx % SW) continue;
      const int ix0 = tx / SW;  // exact: tx is a multiple of SW
      const bool inside = ix0 >= 0 && ix0 + 7 < W;
      const __global T* wk = wp + (size_t)(ky * KW + kx) * 8;
      for (int ci = 0; ci < cin; ci++) {
        const float8 v = load_row8(xp + ((size_t)ci * H + iy) * W, ix0, 1, W, inside, 0);
        const float8 wv = LD8(wk, (size_t)ci * KH * KW * 8);
        acc[0] = MULADD(v, (float8)(wv.s0), acc[0]);
        acc[1] = MULADD(v, (float8)(wv.s1), acc[1]);
        acc[2] = MULADD(v, (float8)(wv.s2), acc[2]);
        acc[3] = MULADD(v, (float8)(wv.s3), acc[3]);
        acc[4] = MULADD(v, (float8)(wv.s4), acc[4]);
        acc[5] = MULADD(v, (float8)(wv.s5), acc[5]);
        acc[6] = MULADD(v, (float8)(wv.s6), acc[6]);
        acc[7] = MULADD(v, (float8)(wv.s7), acc[7]);
      }
    }
  }
  for (int j = 0; j < 8 && cb * 8 + j < cout; j++) {
    const size_t base = (((size_t)ng * cout + cb * 8 + j) * OH + oy) * OW;
    const float8 v = ACTIVATE(acc[j], p0, p1);
    if (SW == 1 && ox0 + 8 <= OW) {
      ST8(y, base + ox0, v);
    } else {
      float t[8];
      PST8(t, v);
      for (int l = 0; l < 8 && ox0 + l * SW < OW; l++) ST(y, base + ox0 + l * SW, t[l]);
    }
  }
}
#endif

#ifdef CONV_FIXED
// General convolution with its window fixed at compile time (FKH, FKW, FSH, FSW, FDH, FDW: names of their own, so
// that the conv_dw block, keyed on KH, stays out of this program), for CPUs: each
// work-item computes FCB output channels x FPX pixels of one output row. The taps unroll; a work-item whose
// row window lies inside the input (most of them) loads whole vectors with no masks, the border ones load
// clamped and masked. The rows of the window that fall outside the input are cut once per work-item.
// x: [N][G*cin][H][W], w: [G][ncb][cin][FKH][FKW][FCB], y/res: [N][G*cout][OH][OW].
#define FV CAT(float, FPX)
#define FLD CAT(LD, FPX)
#define FLOAD CAT(load_row, FPX)
#if FSW == 1
#define FIXED_ROW(row, ix) FLD(row, ix)
#elif FSW == 2 && FPX == 8
#define FIXED_ROW(row, ix) LD16(row, ix).even
#elif FSW == 2
#define FIXED_ROW(row, ix) ((float16)(LD16(row, ix).even, LD16(row, (ix) + 16).even))
#else
#define FIXED_ROW(row, ix) FLOAD(row, ix, FSW, W, true, 0)
#endif
__kernel void conv_fixed(__global const T* restrict x, __global const T* restrict w,
                         __global const T* restrict bias, __global const T* restrict res,
                         __global T* restrict y, int cin, int cout, int H, int W, int OH, int OW,
                         int pad_t, int pad_l, int groups, int NG, int has_res, float p0, float p1, float q0,
                         float q1)
{
  const int ox0 = get_global_id(0) * FPX;
  const int oy = get_global_id(1);
  const int ncb = (cout + FCB - 1) / FCB;
  const int cb = get_global_id(2) % ncb;
  const int ng = get_global_id(2) / ncb;
  if (ox0 >= OW || oy >= OH || ng >= NG) return;
  const int g = ng % groups;
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * FKH * FKW * FCB;
  FV acc[FCB];
#pragma unroll
  for (int j = 0; j < FCB; j++) acc[j] = (FV)(LD(bias, (g * ncb + cb) * FCB + j));
  const int ix0 = ox0 * FSW - pad_l;
  const int iy0 = oy * FSH - pad_t;
  int ky_lo = 0, ky_hi = FKH;
  while (ky_lo < FKH && iy0 + ky_lo * FDH < 0) ky_lo++;
  while (ky_hi > ky_lo && iy0 + (ky_hi - 1) * FDH >= H) ky_hi--;
  // The vector loads of a row read FPX * FSW elements from each tap (FSW <= 2).
  const bool inside = FSW <= 2 && ix0 >= 0 && ix0 + FPX * FSW - 1 + (FKW - 1) * FDW < W;
  if (inside) {
    for (int ci = 0; ci < cin; ci++) {
      const __global T* xc = xp + (size_t)ci * H * W + ix0;
      const __global T* wc = wp + (size_t)ci * FKH * FKW * FCB;
      for (int ky = ky_lo; ky < ky_hi; ky++) {
        const __global T* row = xc + (size_t)(iy0 + ky * FDH) * W;
#pragma unroll
        for (int kx = 0; kx < FKW; kx++) {
          const FV v = FIXED_ROW(row, kx * FDW);
#pragma unroll
          for (int j = 0; j < FCB; j++) acc[j] = MULADD(v, (FV)(LD(wc, (ky * FKW + kx) * FCB + j)), acc[j]);
        }
      }
    }
  } else {
    for (int ci = 0; ci < cin; ci++) {
      const __global T* xc = xp + (size_t)ci * H * W;
      const __global T* wc = wp + (size_t)ci * FKH * FKW * FCB;
      for (int ky = ky_lo; ky < ky_hi; ky++) {
        const __global T* row = xc + (size_t)(iy0 + ky * FDH) * W;
#pragma unroll
        for (int kx = 0; kx < FKW; kx++) {
          const FV v = FLOAD(row, ix0 + kx * FDW, FSW, W, false, 0);
#pragma unroll
          for (int j = 0; j < FCB; j++) acc[j] = MULADD(v, (FV)(LD(wc, (ky * FKW + kx) * FCB + j)), acc[j]);
        }
      }
    }
  }
  STORE_ROW_BLOCKS(FPX, FCB);
}
#endif

#ifdef CONV_TAPS
// Convolutions with long rows of taps (speech front ends: an STFT as a Conv1d of 512 taps, stride 160), for
// CPUs: vectors run along the taps instead of the output pixels, so a large stride costs nothing. Each
// work-item computes TCB channels x TPX pixels as 8-lane partial sums, added up at the end. Taps are padded to
// KW8 (a multiple of 8) with zero weights; a pixel block whose windows leave the row loads lane by lane.
// x: [N][G*cin][H][W], w: [G][ncb][cin][KH][KW8 / 8][TCB][8], bias: [G][ncb*TCB], y/res: [N][G*cout][OH][OW].
__kernel void conv_taps(__global const T* restrict x, __global const T* restrict w,
                        __global const T* restrict bias, __global const T* restrict res,
                        __global T* restrict y, int cin, int cout, int H, int W, int OH, int OW, int KH, int KW8,
                        int SH, int SW, int DH, int pad_t, int pad_l, int groups, int NG, int has_res,
                        float p0, float p1, float q0, float q1)
{
  const int ox0 = get_global_id(0) * TPX;
  const int oy = get_global_id(1);
  const int ncb = (cout + TCB - 1) / TCB;
  const int cb = get_global_id(2) % ncb;
  const int ng = get_global_id(2) / ncb;
  if (ox0 >= OW || oy >= OH || ng >= NG) return;
  const int g = ng % groups;
  const int last = min(ox0 + TPX, OW) - 1;  // pixels past the row's end repeat the last one (discarded)
  const __global T* xp = x + (size_t)ng * cin * H * W;
  const __global T* wp = w + (size_t)(g * ncb + cb) * cin * KH * KW8 * TCB;
  const bool inside = ox0 * SW - pad_l >= 0 && last * SW - pad_l + KW8 - 1 < W;
  float8 acc[TCB][TPX];
#pragma unroll
  for (int j = 0; j < TCB; j++) {
#pragma unroll
    for (int p = 0; p < TPX; p++) acc[j][p] = (float8)(0.0f);
  }
  for (int ci = 0; ci < cin; ci++) {
    for (int ky = 0; ky < KH; ky++) {
      const int iy = oy * SH - pad_t + ky * DH;
      if (iy < 0 || iy >= H) continue;
      const __global T* row = xp + ((size_t)ci * H + iy) * W;
      const __global T* wk = wp + (size_t)(ci * KH + ky) * KW8 * TCB;
      for (int k = 0; k < KW8; k += 8) {
        float8 xv[TPX];
#pragma unroll
        for (int p = 0; p < TPX; p++) {
          const int ix = min(ox0 + p, last) * SW - pad_l + k;
          if (inside) {
            xv[p] = LD8(row, ix);
          } else {
            float t[8];
            for (int l = 0; l < 8; l++) t[l] = ix + l >= 0 && ix + l < W ? LD(row, ix + l) : 0.0f;
            xv[p] = PLD8(t);
          }
        }
#pragma unroll
        for (int j = 0; j < TCB; j++) {
          const float8 wv = LD8(wk, (k * TCB) + j * 8);
#pragma unroll
          for (int p = 0; p < TPX; p++) acc[j][p] = MULADD(xv[p], wv, acc[j][p]);
        }
      }
    }
  }
  for (int j = 0; j < TCB && cb * TCB + j < cout; j++) {
    const float b = LD(bias, (g * ncb + cb) * TCB + j);
    const size_t base = (((size_t)ng * cout + cb * TCB + j) * OH + oy) * OW;
    for (int p = 0; p < TPX && ox0 + p < OW; p++) {
      const float8 a = acc[j][p];
      const float4 s4 = a.lo + a.hi;
      float v = ACTIVATE(s4.x + s4.y + s4.z + s4.w + b, p0, p1);
      if (has_res) v += LD(res, base + ox0 + p);
      ST(y, base + ox0 + p, ACTIVATE2(v, q0, q1));
    }
  }
}
#endif
