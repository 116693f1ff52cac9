// Reductions and row-wise normalisations. Values are accumulated in float.

#if defined(RED_SUM) || defined(RED_MEAN)
#define RINIT 0.0f
#define RSTEP(acc, v) ((acc) + (v))
#elif defined(RED_MAX)
#define RINIT -INFINITY
#define RSTEP(acc, v) ((v) != (v) || (v) > (acc) ? (v) : (acc))
#elif defined(RED_MIN)
#define RINIT INFINITY
#define RSTEP(acc, v) ((v) != (v) || (v) < (acc) ? (v) : (acc))
#elif defined(RED_PROD)
#define RINIT 1.0f
#define RSTEP(acc, v) ((acc) * (v))
#elif defined(RED_SUM_SQUARE) || defined(RED_L2)
#define RINIT 0.0f
#define RSTEP(acc, v) ((acc) + (v) * (v))
#elif defined(RED_L1)
#define RINIT 0.0f
#define RSTEP(acc, v) ((acc) + fabs(v))
#elif defined(RED_LOG_SUM)
#define RINIT 0.0f
#define RSTEP(acc, v) ((acc) + (v))
#elif defined(RED_LOG_SUM_EXP)
#define RINIT 0.0f
#define RSTEP(acc, v) ((acc) + EXP((v) - top))
#endif

#ifdef INT_RED
// Integer Max/Min/Sum/Prod: the accumulator is the element type (RMIN/RMAX: its limits, from the plan).
#undef RINIT
#if defined(RED_MAX)
#define RINIT RMIN
#elif defined(RED_MIN)
#define RINIT RMAX
#elif defined(RED_PROD)
#define RINIT 1
#else
#define RINIT 0
#endif
#define ACC F
#else
#define ACC float
#endif

#ifdef RSTEP
// meta = out dims[6] (1 where reduced), input strides of those dims[6], reduced dims[6], their strides[6].
__kernel void reduce(__global const T* restrict x, __global T* restrict y, __global const int* restrict meta,
                     int n, int rcount)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  int rem = i, base = 0;
  for (int d = 5; d >= 0; d--) {
    base += (rem % meta[d]) * meta[6 + d];
    rem /= meta[d];
  }
  float top = 0.0f;
#ifdef RED_LOG_SUM_EXP
  top = -INFINITY;
  for (int r = 0; r < rcount; r++) {
    int rr = r, off = base;
    for (int d = 5; d >= 0; d--) { off += (rr % meta[12 + d]) * meta[18 + d]; rr /= meta[12 + d]; }
    top = VMAX(top, LD(x, off));
  }
  if (isinf(top)) top = 0.0f;
#endif
  ACC acc = RINIT;
  for (int r = 0; r < rcount; r++) {
    int rr = r, off = base;
    for (int d = 5; d >= 0; d--) { off += (rr % meta[12 + d]) * meta[18 + d]; rr /= meta[12 + d]; }
    const ACC v = LD(x, off);
    acc = RSTEP(acc, v);
  }
#if defined(RED_MEAN)
  acc /= (float)rcount;
#elif defined(RED_L2)
  acc = sqrt(acc);
#elif defined(RED_LOG_SUM)
  acc = log(acc);
#elif defined(RED_LOG_SUM_EXP)
  acc = log(acc) + top;
#endif
  ST(y, i, acc);
}
#endif

#ifndef INT_RED  // the float kernels below: an integer reduction's program leaves them out
// Softmax over the middle axis of [outer][D][inner]; -DLOG gives LogSoftmax.
__kernel void softmax(__global const T* restrict x, __global T* restrict y, int D, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const size_t base = (size_t)(i / inner) * D * inner + i % inner;
  float top = -INFINITY;
  for (int d = 0; d < D; d++) top = VMAX(top, LD(x, base + (size_t)d * inner));
  float sum = 0.0f;
  for (int d = 0; d < D; d++) sum += EXP(LD(x, base + (size_t)d * inner) - top);
#ifdef LOG
  const float ls = log(sum);
  for (int d = 0; d < D; d++) ST(y, base + (size_t)d * inner, LD(x, base + (size_t)d * inner) - top - ls);
#else
  const float inv = 1.0f / sum;
  for (int d = 0; d < D; d++) ST(y, base + (size_t)d * inner, EXP(LD(x, base + (size_t)d * inner) - top) * inv);
#endif
}

// Softmax / LogSoftmax over contiguous rows (inner == 1), 16 lanes at a time; the exponentials written once
// and scaled in place (attention rows of 1500: 3.6 ns an element with the strided kernel above).
__kernel void softmax_rows(__global const T* restrict x, __global T* restrict y, int D, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const size_t base = (size_t)i * D;
  const int D16 = D & ~15;
  float16 m16 = (float16)(-INFINITY);
  for (int d = 0; d < D16; d += 16) m16 = VMAX(m16, LD16(x, base + d));
  float8 m8 = VMAX(m16.lo, m16.hi);
  float4 m4 = VMAX(m8.lo, m8.hi);
  float top = VMAX(VMAX(m4.x, m4.y), VMAX(m4.z, m4.w));
  for (int d = D16; d < D; d++) top = VMAX(top, LD(x, base + d));
  float16 s16 = (float16)(0.0f);
  float sum = 0.0f;
#ifdef LOG
  for (int d = 0; d < D16; d += 16) s16 += EXP(LD16(x, base + d) - top);
  for (int d = D16; d < D; d++) sum += EXP(LD(x, base + d) - top);
#else
  for (int d = 0; d < D16; d += 16) {
    const float16 e = EXP(LD16(x, base + d) - top);
    ST16(y, base + d, e);
    s16 += e;
  }
  for (int d = D16; d < D; d++) {
    const float e = EXP(LD(x, base + d) - top);
    ST(y, base + d, e);
    sum += e;
  }
#endif
  const float8 s8 = s16.lo + s16.hi;
  const float4 s4 = s8.lo + s8.hi;
  sum += (s4.x + s4.y) + (s4.z + s4.w);
#ifdef LOG
  const float ls = top + log(sum);
  for (int d = 0; d < D16; d += 16) ST16(y, base + d, LD16(x, base + d) - ls);
  for (int d = D16; d < D; d++) ST(y, base + d, LD(x, base + d) - ls);
#else
  const float inv = 1.0f / sum;
  for (int d = 0; d < D16; d += 16) ST16(y, base + d, LD16(y, base + d) * inv);
  for (int d = D16; d < D; d++) ST(y, base + d, LD(y, base + d) * inv);
#endif
}

// Mean and 1/sqrt(variance + eps) of the D elements from x[base] (two passes: no cancellation).
inline float2 row_stats(__global const T* restrict x, size_t base, int D, float eps)
{
  float mean = 0.0f;
  for (int d = 0; d < D; d++) mean += LD(x, base + d);
  mean /= (float)D;
  float var = 0.0f;
  for (int d = 0; d < D; d++) {
    const float t = LD(x, base + d) - mean;
    var += t * t;
  }
  return (float2)(mean, 1.0f / sqrt(var / (float)D + eps));
}

// LayerNormalization of rows of D elements, with per-element scale and bias (bias may be zeros).
__kernel void layer_norm(__global const T* restrict x, __global const T* restrict scale,
                         __global const T* restrict bias, __global T* restrict y, int D, int rows, float eps)
{
  const int r = get_global_id(0);
  if (r >= rows) return;
  const size_t base = (size_t)r * D;
  const float2 s = row_stats(x, base, D, eps);
  for (int d = 0; d < D; d++) ST(y, base + d, (LD(x, base + d) - s.x) * s.y * LD(scale, d) + LD(bias, d));
}

// Group and Instance normalization over [N][groups][D] rows (D = channels per group * inner), with
// per-channel scale and bias: the channel of element d of group g is g * (D / inner) + d / inner.
__kernel void group_norm(__global const T* restrict x, __global const T* restrict scale,
                         __global const T* restrict bias, __global T* restrict y, int D, int rows, int groups,
                         int inner, float eps)
{
  const int r = get_global_id(0);
  if (r >= rows) return;
  const size_t base = (size_t)r * D;
  const int c0 = (r % groups) * (D / inner);
  const float2 s = row_stats(x, base, D, eps);
  for (int d = 0; d < D; d++) {
    const int c = c0 + d / inner;
    ST(y, base + d, (LD(x, base + d) - s.x) * s.y * LD(scale, c) + LD(bias, c));
  }
}

// y = x * scale[c] + shift[c] over [N][C][inner] (inference BatchNormalization).
__kernel void channel_affine(__global const T* restrict x, __global const T* restrict scale,
                             __global const T* restrict shift, __global T* restrict y, int C, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const int c = (i / inner) % C;
  ST(y, i, LD(x, i) * LD(scale, c) + LD(shift, c));
}

#ifdef ARG_REDUCE
// ArgMax (-DARG_MAX) / ArgMin over the middle axis of [outer][D][inner] -> int64: the first extreme, or the
// last with -DLAST; a NaN is the extreme (the first NaN, or the last with -DLAST), as NumPy's argmax.
#ifdef ARG_MAX
#define BETTER(v, best) ((v) > (best))
#else
#define BETTER(v, best) ((v) < (best))
#endif
#ifdef LAST
#define TIE_WINS 1
#else
#define TIE_WINS 0
#endif
__kernel void arg_reduce(__global const T* restrict x, __global long* restrict y, int D, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const size_t base = (size_t)(i / inner) * D * inner + i % inner;
  float best = LD(x, base);
  long at = 0;
  int nan_seen = best != best;
  for (int d = 1; d < D; d++) {
    const float v = LD(x, base + (size_t)d * inner);
    if (v != v) {
      if (!nan_seen || TIE_WINS) at = d;
      nan_seen = 1;
    } else if (!nan_seen && (BETTER(v, best) || (TIE_WINS && v == best))) {
      best = v;
      at = d;
    }
  }
  y[i] = at;
}
#endif

#ifdef CUMSUM
// CumSum along the middle axis of [outer][D][inner]; -DEXCLUSIVE leaves each element out of its own sum,
// -DREVERSE runs from the end.
__kernel void cumsum(__global const T* restrict x, __global T* restrict y, int D, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const size_t base = (size_t)(i / inner) * D * inner + i % inner;
  float acc = 0.0f;
  for (int j = 0; j < D; j++) {
#ifdef REVERSE
    const size_t at = base + (size_t)(D - 1 - j) * inner;
#else
    const size_t at = base + (size_t)j * inner;
#endif
    const float v = LD(x, at);
#ifdef EXCLUSIVE
    ST(y, at, acc);
    acc += v;
#else
    acc += v;
    ST(y, at, acc);
#endif
  }
}
#endif
#endif
