// Cast between element types: -DTI / -DTO name OpenCL types; -DIN_HALF / -DOUT_HALF for half storage,
// -DOUT_BOOL for bool (any non-zero becomes 1).
#ifdef IN_HALF
#define LDI(p, i) vload_half((i), (p))
#else
#define LDI(p, i) ((p)[i])
#endif

__kernel void cast(__global const TI* restrict x, __global TO* restrict y, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
#if defined(OUT_HALF)
  vstore_half((float)LDI(x, i), i, y);
#elif defined(OUT_BOOL)
  y[i] = LDI(x, i) != 0 ? 1 : 0;
#else
  y[i] = (TO)LDI(x, i);
#endif
}
