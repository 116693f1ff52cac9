// Canary: every OpenCL builtin clmace's kernels call, at every vector width they use (1, 4, 8, 16), in
// fp32 and through half storage (-DHALF: vload_half/vstore_half), plus local memory and barriers. A driver
// that miscompiles or crashes on any of these would do so on a real model; health.py runs this in a child
// process before the first real compile on a device. tests/opencl/test_canary.py checks that every builtin
// in kernels/*.cl appears here.

#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VF_4 float4
#define VF_8 float8
#define VF_16 float16
#define VI_4 int4
#define VI_8 int8
#define VI_16 int16
#define CVT_4 convert_float4
#define CVT_8 convert_float8
#define CVT_16 convert_float16
#ifdef HALF
#define LOAD_1(i, p) vload_half((i), (p))
#define LOAD_4(i, p) vload_half4((i), (p))
#define LOAD_8(i, p) vload_half8((i), (p))
#define LOAD_16(i, p) vload_half16((i), (p))
#define STORE_1(v, i, p) vstore_half((v), (i), (p))
#define STORE_4(v, i, p) vstore_half4((v), (i), (p))
#define STORE_8(v, i, p) vstore_half8((v), (i), (p))
#define STORE_16(v, i, p) vstore_half16((v), (i), (p))
#define S half
#else
#define LOAD_1(i, p) ((p)[i])
#define LOAD_4(i, p) vload4((i), (p))
#define LOAD_8(i, p) vload8((i), (p))
#define LOAD_16(i, p) vload16((i), (p))
#define STORE_1(v, i, p) ((p)[i] = (v))
#define STORE_4(v, i, p) vstore4((v), (i), (p))
#define STORE_8(v, i, p) vstore8((v), (i), (p))
#define STORE_16(v, i, p) vstore16((v), (i), (p))
#define S float
#endif

// scalar_math: out[k][i] = the k-th function of canary.FUNCTIONS at (a[i], b[i], c[i]) (every builtin the
// element-wise kernels call). vector_W: the functions canary.VECTOR_FUNCTIONS names, on W-wide vectors (those
// the conv/GEMM/pool kernels apply to float4/8/16). a, b in (0.1, 0.9), c in (-2, 2): all are defined there.
__kernel void scalar_math(__global const S* a, __global const S* b, __global const S* c, __global S* out, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const float x = LOAD_1(i, a), y = LOAD_1(i, b), z = LOAD_1(i, c);
  const int lt = isless(z, 0.0f);
  float r[] = {
    fma(x, y, z), mad(x, y, z), exp(z), log(x), log1p(x), sqrt(x), pow(x, y), tanh(z), erf(z), fabs(z),
    fmax(x, z), fmin(x, z), max(x, z), min(x, z), clamp(z, -x, y), select(x, y, lt), ceil(z), floor(z),
    rint(z), fmod(z, y), sin(z), cos(z), tan(x), sinh(z), cosh(z), asin(x), acos(x), atan(z), atanh(x),
    asinh(z), acosh(x + 1.0f), convert_float(isnan(z / x)) + convert_float(isinf(z / (x - x))),
    convert_float(lt) + z * 0.5f, copysign(x, z)};
  for (int k = 0; k < (int)(sizeof(r) / sizeof(r[0])); k++) STORE_1(r[k], k * n + i, out);
}

#define VECTOR_KERNEL(W)                                                                                    \
  __kernel void CAT(vector_, W)(__global const S* a, __global const S* b, __global const S* c,              \
                                __global S* out, int n)                                                      \
  {                                                                                                          \
    const int i = get_global_id(0);                                                                          \
    if (i * W >= n) return;                                                                                  \
    const CAT(VF_, W) x = LOAD_##W(i, a), y = LOAD_##W(i, b), z = LOAD_##W(i, c);                          \
    const CAT(VI_, W) lt = isless(z, (CAT(VF_, W))(0.0f));                                                  \
    CAT(VF_, W) r[] = {fma(x, y, z), mad(x, y, z), exp(z), log(x), sqrt(x), tanh(z), fabs(z), fmax(x, z),   \
                       fmin(x, z), max(x, z), min(x, z), clamp(z, -x, y), select(x, y, lt), ceil(z),        \
                       CAT(CVT_, W)(isinf(z / (x - x))), CAT(CVT_, W)(lt) + z * 0.5f};                      \
    for (int k = 0; k < (int)(sizeof(r) / sizeof(r[0])); k++) STORE_##W(r[k], k * (n / W) + i, out);        \
  }

VECTOR_KERNEL(4)
VECTOR_KERNEL(8)
VECTOR_KERNEL(16)

// A 2-D 3x3 depthwise-style stencil with clamped loads, launched with local size (1, 1) and larger ones
// (PoCL compiles a work-group function per local size; a crash at this launch shape was seen in the field).
__kernel void stencil(__global const S* a, __global S* out, int H, int W)
{
  const int x = get_global_id(0), y = get_global_id(1);
  if (x >= W || y >= H) return;
  float acc = 0.0f;
  for (int dy = -1; dy <= 1; dy++)
    for (int dx = -1; dx <= 1; dx++)
      acc = fma(LOAD_1(clamp(y + dy, 0, H - 1) * W + clamp(x + dx, 0, W - 1), a), 1.0f / 9.0f, acc);
  STORE_1(acc, y * W + x, out);
}

// Work-group sum through local memory and barriers (the tiled GEMM and pooling kernels do this).
__kernel void group_sum(__global const S* a, __global S* out, __local float* scratch)
{
  const int l = get_local_id(0), g = get_group_id(0), size = get_local_size(0);
  scratch[l] = LOAD_1(get_global_id(0), a);
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int half_size = size / 2; half_size > 0; half_size /= 2) {
    if (l < half_size) scratch[l] += scratch[l + half_size];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (l == 0) STORE_1(scratch[0], g + 0 * get_num_groups(0), out);
}
