// Common header, prepended to every clmace program.
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

// Storage type T and compute type F: with -DHALF, float tensors are stored as half and every load and
// store converts (vload_half/vstore_half are core OpenCL, so math stays in float on every device).
#ifdef HALF
#define T half
#define F float
#define LD(p, i) vload_half((i), (p))
#define ST(p, i, v) vstore_half((v), (i), (p))
#define LD4(p, i) vload_half4(0, (p) + (i))
#define LD8(p, i) vload_half8(0, (p) + (i))
#define LD16(p, i) vload_half16(0, (p) + (i))
#define ST4(p, i, v) vstore_half4((v), 0, (p) + (i))
#define ST8(p, i, v) vstore_half8((v), 0, (p) + (i))
#define ST16(p, i, v) vstore_half16((v), 0, (p) + (i))
#else
#ifndef T
#define T float
#endif
#ifndef F
#define F T
#endif
#define LD(p, i) ((F)((p)[i]))
#define ST(p, i, v) ((p)[i] = (T)(v))
// Vector loads and stores spelt out lane by lane, not vloadN/vstoreN: PoCL 3.0 leaves those builtins as
// out-of-line calls in larger kernels, and a call makes every vector register of the caller spill (conv
// kernels ran at a fifth of their speed on AVX2), while consecutive scalar accesses become one vector
// access in LLVM's SLP vectorizer (GPU compilers combine them too).
#define LD4(p, i) ((CAT(F, 4))((p)[(i)], (p)[(i) + 1], (p)[(i) + 2], (p)[(i) + 3]))
#define LD8(p, i) ((CAT(F, 8))(LD4(p, i), LD4(p, (i) + 4)))
#define LD16(p, i) ((CAT(F, 16))(LD8(p, i), LD8(p, (i) + 8)))
#define ST4(p, i, v) do { const CAT(F, 4) st4_ = (v); (p)[(i)] = st4_.s0; (p)[(i) + 1] = st4_.s1; \
    (p)[(i) + 2] = st4_.s2; (p)[(i) + 3] = st4_.s3; } while (0)
#define ST8(p, i, v) do { const CAT(F, 8) st8_ = (v); ST4(p, i, st8_.lo); ST4(p, (i) + 4, st8_.hi); } while (0)
#define ST16(p, i, v) do { const CAT(F, 16) st16_ = (v); ST8(p, i, st16_.lo); ST8(p, (i) + 8, st16_.hi); } while (0)
#endif

// The same for private float scratch arrays (float in every storage mode), and an integer clamp written
// out (the clamp builtin is a call too).
#define PLD4(p) ((float4)((p)[0], (p)[1], (p)[2], (p)[3]))
#define PLD8(p) ((float8)(PLD4(p), PLD4((p) + 4)))
#define PLD16(p) ((float16)(PLD8(p), PLD8((p) + 8)))
#define PST4(p, v) do { const float4 pst4_ = (v); (p)[0] = pst4_.s0; (p)[1] = pst4_.s1; (p)[2] = pst4_.s2; \
    (p)[3] = pst4_.s3; } while (0)
#define PST8(p, v) do { const float8 pst8_ = (v); PST4(p, pst8_.lo); PST4((p) + 4, pst8_.hi); } while (0)
#define PST16(p, v) do { const float16 pst16_ = (v); PST8(p, pst16_.lo); PST8((p) + 8, pst16_.hi); } while (0)
#define ICLAMP(v, lo, hi) ((v) < (lo) ? (lo) : (v) > (hi) ? (hi) : (v))
// fmax/fmin/clamp as selects (scalars or vectors; a NaN operand as in fmax/fmin: the other one wins), so
// that PoCL neither calls out nor stops vectorising a kernel's work-items over them.
#define VMAX(a, b) ((a) >= (b) || (b) != (b) ? (a) : (b))
#define VMIN(a, b) ((a) <= (b) || (b) != (b) ? (a) : (b))
#define VCLAMP(x, lo, hi) VMIN(VMAX((x), (lo)), (hi))

// exp() on CPU devices (-DCLMACE_CPU, set by the plan): Cody-Waite reduction and Cephes' degree-6 polynomial,
// within 2 ulp of exp over float's range, written inline because PoCL 3.0 calls its exp out of line per
// element (which also keeps it from vectorising element-wise kernels). NaN, overflow and underflow as exp.
// GPUs keep their own exp (a hardware instruction on NVIDIA). PoCL is clang: overloadable is there.
#if defined(CLMACE_CPU)
#define EXP_F(VT, IT, AS_INT, AS_FLOAT) \
  __attribute__((overloadable, always_inline)) inline VT exp_f(VT x) { \
    const VT c = VCLAMP(x, -87.33654f, 88.72283f); \
    const VT t = c * 1.44269504f + 12582912.0f; /* 1.5 * 2^23: t's low bits hold the integer nearest c / ln 2 */ \
    const VT k = t - 12582912.0f; \
    const IT ki = AS_INT(t) - 0x4B400000; \
    const VT r = c - k * 0.693359375f + k * 2.12194440e-4f; \
    VT q = 1.9875691500e-4f; \
    q = q * r + 1.3981999507e-3f; \
    q = q * r + 8.3334519073e-3f; \
    q = q * r + 4.1665795894e-2f; \
    q = q * r + 1.6666665459e-1f; \
    q = q * r + 5.0000001201e-1f; \
    const VT y = q * r * r + r + 1.0f; \
    const IT k1 = ki >> 1; /* 2^k as two factors: k reaches 128 */ \
    const VT e = y * AS_FLOAT((k1 + 127) << 23) * AS_FLOAT((ki - k1 + 127) << 23); \
    return x != x ? x : x > 88.72283f ? (VT)(INFINITY) : x < -87.33654f ? (VT)(0.0f) : e; \
  }
EXP_F(float, int, as_int, as_float)
EXP_F(float4, int4, as_int4, as_float4)
EXP_F(float8, int8, as_int8, as_float8)
EXP_F(float16, int16, as_int16, as_float16)
#define EXP(x) exp_f(x)
// tanh on CPU devices, for the same reason: Cephes' odd polynomial below 0.625 in magnitude, else
// 1 - 2 / (e^2|x| + 1) with the sign put back (e^2|x| overflowing to infinity gives 1). NaN stays NaN.
#define TANH_F(VT) \
  __attribute__((overloadable, always_inline)) inline VT tanh_f(VT x) { \
    const VT a = VMAX(x, -x); \
    const VT z = x * x; \
    VT p = -5.70498872745e-3f; \
    p = p * z + 2.06390887954e-2f; \
    p = p * z - 5.37397155531e-2f; \
    p = p * z + 1.33314422036e-1f; \
    p = p * z - 3.33332819422e-1f; \
    const VT small = p * z * x + x; \
    const VT big = 1.0f - 2.0f / (exp_f(a + a) + 1.0f); \
    return x != x || x == 0.0f ? x : a < 0.625f ? small : x < 0.0f ? -big : big; /* x: NaN, and -0 kept */ \
  }
TANH_F(float)
TANH_F(float4)
TANH_F(float8)
TANH_F(float16)
#define TANH(x) tanh_f(x)
#else
#define EXP(x) exp(x)
#define TANH(x) tanh(x)
#endif

// A launch whose range the lowering made a multiple of its work-group (-DEXACT_RANGE) has no work-item past
// the end: PoCL does not vectorise the work-items of a kernel with a conditional return before a load from
// an address they share (a broadcast operand), so such kernels skip the check.
#ifdef EXACT_RANGE
#define RETURN_PAST(i, n)
#else
#define RETURN_PAST(i, n) if ((i) >= (n)) return
#endif

// The start of a walk over merged dims (lower/eltwise.collapse; dims right-aligned in meta[0..5]): by element
// (i the global id, n the element count), or with -DROWS by rows: dimension 0 walks the last dim (its strides
// are compiled in by the kernel's ROW_* defines, so that PoCL vectorises the loads), dimension 1 the rows
// (n the row length), whose coordinates cost divisions once per row. `rem` is left for the dims from
// WALK_FIRST down; `col` is the position in the row (0 by element, where the ROW_* strides are 0).
#ifdef ROWS
#define WALK_START(n) const int col = get_global_id(0); RETURN_PAST(col, (n)); int rem = get_global_id(1); \
  const int i = rem * (n) + col;
#define WALK_FIRST 4
#else
#define WALK_START(n) const int col = 0; const int i = get_global_id(0); RETURN_PAST(i, (n)); int rem = i;
#define WALK_FIRST 5
#endif

// a * b + c for multiply-accumulate loops, not fma()/mad(): PoCL 3.0 (LLVM 14) lowers those builtins on
// vectors to slow per-lane code (gemm_packed ran at 8 GFLOP/s with fma(), 40 with this on one Zen 5 core
// pair), while a * b + c is contracted into the target's FMA instruction (FP_CONTRACT is on in OpenCL C).
#define MULADD(a, b, c) ((a) * (b) + (c))


// Fused activations: ACT_NONE, ACT_RELU, ... are defined in front of this file from clmace.ops.activation.FUSED
// (backends/opencl/programs.py); p0, p1 are the kernel's activation parameters.

#define ACTIVATE_(code, x, p0, p1) \
  ((code) == ACT_RELU ? VMAX((x), 0.0f) \
   : (code) == ACT_LEAKY_RELU ? (VMAX((x), 0.0f) + (p0) * VMIN((x), 0.0f)) \
   : (code) == ACT_SIGMOID ? (1.0f / (1.0f + EXP(-(x)))) \
   : (code) == ACT_HARD_SIGMOID ? VCLAMP((p0) * (x) + (p1), 0.0f, 1.0f) \
   : (code) == ACT_HARD_SWISH ? ((x) * VCLAMP((x) * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f)) \
   : (code) == ACT_SWISH ? ((x) / (1.0f + EXP(-(x)))) \
   : (code) == ACT_CLIP ? VMIN(VMAX((x), (p0)), (p1)) \
   : (code) == ACT_TANH ? TANH(x) \
   : (code) == ACT_MAX ? ((x) >= (p0) || (x) != (x) ? (x) : (p0)) \
   : (code) == ACT_MIN ? ((x) <= (p0) || (x) != (x) ? (x) : (p0)) \
   : (x))

#ifndef ACT
#define ACT ACT_NONE
#endif
#ifndef ACT2
#define ACT2 ACT_NONE
#endif
// ACT applies to the op's result, ACT2 after a fused residual add (or alone: a second activation).
#define ACTIVATE(x, p0, p1) ACTIVATE_(ACT, x, p0, p1)
#define ACTIVATE2(x, p0, p1) ACTIVATE_(ACT2, x, p0, p1)
