// Common header, prepended to every clmace program.
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
#define LD4(p, i) vload4(0, (p) + (i))
#define LD8(p, i) vload8(0, (p) + (i))
#define LD16(p, i) vload16(0, (p) + (i))
#define ST4(p, i, v) vstore4((v), 0, (p) + (i))
#define ST8(p, i, v) vstore8((v), 0, (p) + (i))
#define ST16(p, i, v) vstore16((v), 0, (p) + (i))
#endif

// a * b + c for multiply-accumulate loops, not fma()/mad(): PoCL 3.0 (LLVM 14) lowers those builtins on
// vectors to slow per-lane code (gemm_packed ran at 8 GFLOP/s with fma(), 40 with this on one Zen 5 core
// pair), while a * b + c is contracted into the target's FMA instruction (FP_CONTRACT is on in OpenCL C).
#define MULADD(a, b, c) ((a) * (b) + (c))

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

// Fused activations: ACT_NONE, ACT_RELU, ... are defined in front of this file from clmace.ops.activation.FUSED
// (backends/opencl/programs.py); p0, p1 are the kernel's activation parameters.

#define ACTIVATE_(code, x, p0, p1) \
  ((code) == ACT_RELU ? fmax((x), 0.0f) \
   : (code) == ACT_LEAKY_RELU ? (fmax((x), 0.0f) + (p0) * fmin((x), 0.0f)) \
   : (code) == ACT_SIGMOID ? (1.0f / (1.0f + exp(-(x)))) \
   : (code) == ACT_HARD_SIGMOID ? clamp((p0) * (x) + (p1), 0.0f, 1.0f) \
   : (code) == ACT_HARD_SWISH ? ((x) * clamp((x) * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f)) \
   : (code) == ACT_SWISH ? ((x) / (1.0f + exp(-(x)))) \
   : (code) == ACT_CLIP ? fmin(fmax((x), (p0)), (p1)) \
   : (code) == ACT_TANH ? tanh(x) \
   : (x))

#ifndef ACT
#define ACT ACT_NONE
#endif
#ifndef ACT2
#define ACT2 ACT_NONE
#endif
// ACT applies to the op's result, ACT2 after a fused residual add.
#define ACTIVATE(x, p0, p1) ACTIVATE_(ACT, x, p0, p1)
#define ACTIVATE2(x, p0, p1) ACTIVATE_(ACT2, x, p0, p1)
