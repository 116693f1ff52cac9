// Cast between element types: -DTI / -DTO name OpenCL types; -DIN_HALF / -DOUT_HALF for half storage,
// -DIN_BF16 / -DOUT_BF16 for bfloat16 (stored as ushort: a float's upper half), -DOUT_BOOL for bool (any
// non-zero becomes 1).
#ifdef IN_HALF
#define LDI(p, i) vload_half((i), (p))
#elif defined(IN_BF16)
#define LDI(p, i) as_float((uint)(p)[i] << 16)
#else
#define LDI(p, i) ((p)[i])
#endif

__kernel void cast(__global const TI* restrict x, __global TO* restrict y, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
#if defined(OUT_HALF)
  vstore_half((float)LDI(x, i), i, y);
#elif defined(OUT_BF16)
  // Round to nearest even, as ml_dtypes does; a NaN becomes the quiet NaN of its sign.
  const uint u = as_uint((float)LDI(x, i));
  y[i] = (u & 0x7fffffffu) > 0x7f800000u ? (ushort)(((u >> 16) & 0x8000u) | 0x7fc0u)
                                         : (ushort)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#elif defined(OUT_BOOL)
  y[i] = LDI(x, i) != 0 ? 1 : 0;
#else
  y[i] = (TO)LDI(x, i);
#endif
}
