// Element-wise unary and broadcasting binary ops; the op is chosen by -DOP_<NAME>.
// T/F: storage/compute type (float via common.cl, or -DT=int -DF=int ...); OUT_T: output storage type
// when it differs (-DBOOL_OUT for comparisons and IsNaN/IsInf).

#ifdef BOOL_OUT
#define OUT_T uchar
#define STORE(p, i, v) ((p)[i] = (uchar)((v) ? 1 : 0))
#else
#define OUT_T T
#define STORE(p, i, v) ST(p, i, v)
#endif

// erf to ~1e-7 (a Taylor series below 0.5, Numerical Recipes' erfc fit above): PoCL's erf() is a scalar
// library call, 9x slower than exp() here (28 vs 3.3 ms on 2.3M elements), and GELU needs one per element.
// Both pieces are computed and one selected, with no fabs/copysign (calls on PoCL too), so that PoCL
// vectorises the work-items of a kernel using it (a GELU chain: 11.5 -> 2 ns per element).
__attribute__((always_inline)) inline float erf_f(float x)
{
  const float a = VMAX(x, -x);
  const float z = x * x;
  const float small = x * (1.1283791671f + z * (-0.3761263890f + z * (0.1128379167f + z * (-0.0268661706f
                      + z * (0.0052239776f + z * -0.0008548327f)))));
  const float t = 1.0f / (1.0f + 0.5f * a);
  const float e = t * EXP(-z - 1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f
                  + t * (-0.18628806f + t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f
                  + t * (-0.82215223f + t * 0.17087277f)))))))));
  const float big = 1.0f - e;
  return a < 0.5f ? small : x < 0.0f ? -big : big;
}

#if defined(OP_ABS)
#define UNARY(x) ((x) < 0 ? -(x) : (x))
#elif defined(OP_NEG)
#define UNARY(x) (-(x))
#elif defined(OP_RECIPROCAL)
#define UNARY(x) (1.0f / (x))
#elif defined(OP_FLOOR)
#define UNARY(x) floor(x)
#elif defined(OP_CEIL)
#define UNARY(x) ceil(x)
#elif defined(OP_ROUND)
#define UNARY(x) rint(x)
#elif defined(OP_SIGN)
#define UNARY(x) ((F)(((x) > 0) - ((x) < 0)))
#elif defined(OP_EXP)
#define UNARY(x) EXP(x)
#elif defined(OP_LOG)
#define UNARY(x) log(x)
#elif defined(OP_SQRT)
#define UNARY(x) sqrt(x)
#elif defined(OP_ERF)
#define UNARY(x) erf_f(x)
#elif defined(OP_SIN)
#define UNARY(x) sin(x)
#elif defined(OP_COS)
#define UNARY(x) cos(x)
#elif defined(OP_TAN)
#define UNARY(x) tan(x)
#elif defined(OP_ASIN)
#define UNARY(x) asin(x)
#elif defined(OP_ACOS)
#define UNARY(x) acos(x)
#elif defined(OP_ATAN)
#define UNARY(x) atan(x)
#elif defined(OP_SINH)
#define UNARY(x) sinh(x)
#elif defined(OP_COSH)
#define UNARY(x) cosh(x)
#elif defined(OP_ASINH)
#define UNARY(x) asinh(x)
#elif defined(OP_ACOSH)
#define UNARY(x) acosh(x)
#elif defined(OP_ATANH)
#define UNARY(x) atanh(x)
#elif defined(OP_RELU)
#define UNARY(x) ((x) > 0 ? (x) : (F)0)
#elif defined(OP_LEAKY_RELU)
#define UNARY(x) ((x) >= 0 ? (x) : (x) * p0)
#elif defined(OP_SIGMOID)
#define UNARY(x) (1.0f / (1.0f + EXP(-(x))))
#elif defined(OP_HARD_SIGMOID)
#define UNARY(x) VCLAMP(p0 * (x) + p1, 0.0f, 1.0f)
#elif defined(OP_HARD_SWISH)
#define UNARY(x) ((x) * VCLAMP((x) * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f))
#elif defined(OP_SWISH)
#define UNARY(x) ((x) / (1.0f + EXP(-p0 * (x))))
#elif defined(OP_TANH)
#define UNARY(x) TANH(x)
#elif defined(OP_GELU)
#define UNARY(x) (0.5f * (x) * (1.0f + erf_f((x) * 0.70710678118654752f)))
#elif defined(OP_GELU_TANH)
#define UNARY(x) (0.5f * (x) * (1.0f + TANH(0.7978845608028654f * ((x) + 0.044715f * (x) * (x) * (x)))))
#elif defined(OP_ELU)
#define UNARY(x) ((x) >= 0 ? (x) : p0 * (EXP(x) - 1.0f))
#elif defined(OP_SELU)
#define UNARY(x) (p1 * ((x) > 0 ? (x) : p0 * (EXP(x) - 1.0f)))
#elif defined(OP_CELU)
#define UNARY(x) (VMAX((x), 0.0f) + VMIN(0.0f, p0 * (EXP((x) / p0) - 1.0f)))
#elif defined(OP_SOFTPLUS)
#define UNARY(x) ((x) > 20.0f ? (x) : log1p(EXP(x)))
#elif defined(OP_SOFTSIGN)
#define UNARY(x) ((x) / (1.0f + fabs(x)))
#elif defined(OP_MISH)
#define UNARY(x) ((x) * TANH((x) > 20.0f ? (x) : log1p(EXP(x))))
#elif defined(OP_THRESHOLDED_RELU)
#define UNARY(x) ((x) > p0 ? (x) : 0.0f)
#elif defined(OP_CLIP)
#define UNARY(x) ((x) < p0 ? p0 : ((x) > p1 ? p1 : (x)))
#elif defined(OP_ISNAN)
#define UNARY(x) isnan(x)
#elif defined(OP_ISINF)
#define UNARY(x) (isinf(x) && ((x) > 0 ? p1 != 0.0f : p0 != 0.0f))
#elif defined(OP_NOT)
#define UNARY(x) (!(x))
#elif defined(OP_COPY)
#define UNARY(x) (x)
#endif

#if defined(OP_ADD) || defined(OP_SUM)
#define BINARY(a, b) ((a) + (b))
#elif defined(OP_SUB)
#define BINARY(a, b) ((a) - (b))
#elif defined(OP_MUL)
#define BINARY(a, b) ((a) * (b))
#elif defined(OP_DIV) && defined(INT_MATH)
// A zero divisor (or a lane the compiler runs past the end) must not trap: divide by 1, give 0.
#define BINARY(a, b) ((b) == 0 ? (F)0 : (a) / ((b) == 0 ? (F)1 : (b)))
#elif defined(OP_DIV)
#define BINARY(a, b) ((a) / (b))
#elif defined(OP_MEAN)
#define BINARY(a, b) (((a) + (b)) * 0.5f)
#elif defined(OP_POW)
#define BINARY(a, b) pow((a), (b))
#elif defined(OP_MAX)
#define BINARY(a, b) ((a) != (a) ? (a) : (b) != (b) ? (b) : (a) > (b) ? (a) : (b))
#elif defined(OP_MIN)
#define BINARY(a, b) ((a) != (a) ? (a) : (b) != (b) ? (b) : (a) < (b) ? (a) : (b))
#elif defined(OP_PRELU)
#define BINARY(a, b) ((a) < 0 ? (a) * (b) : (a))
#elif defined(OP_FMOD)
#define BINARY(a, b) fmod((a), (b))
#elif defined(OP_MOD_FLOAT)
#define BINARY(a, b) mod_float((a), (b))
#elif defined(OP_MOD_INT)
#define BINARY(a, b) mod_int((a), (b))
#elif defined(OP_FMOD_INT)
#define BINARY(a, b) ((b) == 0 ? (F)0 : (a) % ((b) == 0 ? (F)1 : (b)))
#elif defined(OP_EQUAL)
#define BINARY(a, b) ((a) == (b))
#elif defined(OP_LESS)
#define BINARY(a, b) ((a) < (b))
#elif defined(OP_GREATER)
#define BINARY(a, b) ((a) > (b))
#elif defined(OP_LESS_OR_EQUAL)
#define BINARY(a, b) ((a) <= (b))
#elif defined(OP_GREATER_OR_EQUAL)
#define BINARY(a, b) ((a) >= (b))
#elif defined(OP_AND)
#define BINARY(a, b) ((a) && (b))
#elif defined(OP_OR)
#define BINARY(a, b) ((a) || (b))
#elif defined(OP_XOR)
#define BINARY(a, b) (((a) != 0) != ((b) != 0))
#endif

#ifdef OP_MOD_FLOAT
inline float mod_float(float a, float b) {
  float r = fmod(a, b);
  return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r;
}
#endif
#ifdef OP_MOD_INT
inline F mod_int(F a, F b) {
  const F d = b == 0 ? (F)1 : b;  // never trap, even in lanes computed speculatively
  const F r = a % d;
  return b == 0 ? (F)0 : (r != 0 && ((r < 0) != (d < 0))) ? r + d : r;
}
#endif

#ifdef UNARY
__kernel void unary(__global const T* restrict x, __global OUT_T* restrict y, int n, float p0, float p1)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const F v = LD(x, i);
  STORE(y, i, UNARY(v));
}
#endif

#ifdef CLIP_BUFS
// Clip whose bounds are computed at run time: single-element tensors read here (has_lo/has_hi say which
// are given), min(max(x, lo), hi) as onnxruntime orders it; NaN stays NaN.
__kernel void clip_bufs(__global const T* restrict x, __global OUT_T* restrict y, int n,
                        __global const T* restrict lo, __global const T* restrict hi, int has_lo, int has_hi)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  F v = LD(x, i);
  if (has_lo) { const F l = LD(lo, 0); v = v < l ? l : v; }
  if (has_hi) { const F h = LD(hi, 0); v = v > h ? h : v; }
  STORE(y, i, v);
}
#endif

#ifdef BINARY
// Same-shape operands (or one of them a single element: its stride is 0).
__kernel void binary_flat(__global const T* restrict a, __global const T* restrict b,
                          __global OUT_T* restrict y, int n, int sa, int sb)
{
  const int i = get_global_id(0);
  RETURN_PAST(i, n);
  const F va = LD(a, i * sa), vb = LD(b, i * sb);
  STORE(y, i, BINARY(va, vb));
}

#ifndef RANK
#define RANK 6
#endif
#ifndef ROW_SA
#define ROW_SA 0
#define ROW_SB 0
#endif
// General broadcast over RANK (<= 6, merged by lower/eltwise.collapse) dims: meta = out dims[6], a strides[6],
// b strides[6], the dims right-aligned. By element, or with -DROWS by rows (WALK_START): then the last dim's
// strides are ROW_SA and ROW_SB and n is its length.
__kernel void binary(__global const T* restrict a, __global const T* restrict b,
                     __global OUT_T* restrict y, __global const int* restrict meta, int n)
{
  WALK_START(n)
  int ia = col * ROW_SA, ib = col * ROW_SB;
  for (int d = WALK_FIRST; d > 6 - RANK; d--) {
    const int c = rem % meta[d];
    rem /= meta[d];
    ia += c * meta[6 + d];
    ib += c * meta[12 + d];
  }
  ia += rem * meta[12 - RANK];
  ib += rem * meta[18 - RANK];
  const F va = LD(a, ia), vb = LD(b, ib);
  STORE(y, i, BINARY(va, vb));
}
#endif

#ifdef CHAIN
// A generated chain of element-wise ops (lower/chain.py): CHAIN_BODY assigns t[0..CHAIN_N-1] from the inputs
// x0..x7, loaded at this element (LD(xk,i)), at element 0, or at a broadcast offset OFFj that CHAIN_INDEX
// computes with the dims and strides compiled in (over rows, CHAIN_ROW, when the merged last dim is long);
// the last temporary is the result. meta: the output's dims.
__kernel void chain(__global const T* x0, __global const T* x1, __global const T* x2, __global const T* x3,
                    __global const T* x4, __global const T* x5, __global const T* x6, __global const T* x7,
                    __global T* y, __global const int* meta, int n)
{
#ifdef ROWS
  WALK_START(CHAIN_ROW)  // rows of CHAIN_ROW elements
#else
  WALK_START(n)
#endif
#ifdef CHAIN_INDEX
#define CI(name, v) const int name = (v);
  CHAIN_INDEX
#endif
  float t[CHAIN_N];
  CHAIN_BODY
  ST(y, i, t[CHAIN_N - 1]);
}
#endif
