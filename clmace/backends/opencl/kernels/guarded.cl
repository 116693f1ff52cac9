// Ops whose output shape depends on run-time values, planned at the shape the dry run saw. Work-item 0
// recomputes the shape from the values and writes `flag` to guard[0] when it differs (the runtime then plans
// again); every index stays in bounds either way.
#ifndef ELT
#define ELT uint
#endif
#ifndef IDX
#define IDX long
#endif

// Slice with starts/ends from tensors (steps constant). meta = out dims[6], in dims[6], in strides[6], then per
// sliced axis k < nax: its 6-padded axis and its step. ONNX clamping: start to [0, D] ([0, D-1] stepping back),
// end to [0, D] ([-1, D-1] stepping back).
__kernel void slice_dyn(__global const ELT* restrict x, __global ELT* restrict y,
                        __global const IDX* restrict starts, __global const IDX* restrict ends,
                        __global const int* restrict meta, int nax, int n, __global int* guard, int flag)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  long first[6] = {0, 0, 0, 0, 0, 0}, step[6] = {1, 1, 1, 1, 1, 1};
  for (int k = 0; k < nax; k++) {
    const int a = meta[18 + 2 * k];
    const long s = meta[19 + 2 * k], dim = meta[6 + a];
    long b = starts[k], e = ends[k];
    if (b < 0) b += dim;
    if (e < 0) e += dim;
    long len;
    if (s > 0) {
      b = clamp(b, 0L, dim);
      e = clamp(e, 0L, dim);
      len = e > b ? (e - b + s - 1) / s : 0;
    } else {
      b = clamp(b, 0L, dim - 1);
      e = clamp(e, -1L, dim - 1);
      len = b > e ? (b - e - s - 1) / (-s) : 0;
    }
    if (i == 0 && len != meta[a]) guard[0] = flag;
    first[a] = b;
    step[a] = s;
  }
  int rem = i;
  long off = 0;
  for (int d = 5; d >= 0; d--) {
    const long c = rem % meta[d];
    rem /= meta[d];
    off += clamp(first[d] + c * step[d], 0L, (long)meta[6 + d] - 1) * meta[12 + d];
  }
  y[i] = x[off];
}

#ifdef RANGE_T
// Range(start, limit, delta) from tensors: y[i] = start + i * delta, its length checked.
__kernel void range_dyn(__global const RANGE_T* restrict start, __global const RANGE_T* restrict limit,
                        __global const RANGE_T* restrict delta, __global RANGE_T* restrict y, int n,
                        __global int* guard, int flag)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const RANGE_T b = start[0], d = delta[0];
  if (i == 0) {
#ifdef RANGE_FLOAT
    const float len = fmax(ceil((limit[0] - b) / d), 0.0f);
    if (len != (float)n) guard[0] = flag;
#else
    const long span = (long)limit[0] - (long)b, step = (long)d;
    long len = 0;
    if (step > 0 && span > 0) len = (span + step - 1) / step;
    if (step < 0 && span < 0) len = (-span - step - 1) / (-step);
    if (len != n) guard[0] = flag;
#endif
  }
  y[i] = b + (RANGE_T)i * d;
}
#endif

// Pad with pads from a tensor (negative pads crop). meta = out dims[6], in dims[6], in strides[6], then per
// dim the index of its entry in pads (-1: not padded); k = number of padded axes; mode 0 constant (fill[0]),
// 1 edge, 2 reflect, 3 wrap, each over the cropped input as onnxruntime does.
__kernel void pad_dyn(__global const ELT* restrict x, __global ELT* restrict y, __global const IDX* restrict pads,
                      __global const ELT* restrict fill, __global const int* restrict meta, int k, int mode,
                      int n, __global int* guard, int flag)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  int rem = i;
  long off = 0;
  bool outside = false;
  for (int d = 5; d >= 0; d--) {
    const long c = rem % meta[d];
    rem /= meta[d];
    const int e = meta[18 + d];
    const long dim = meta[6 + d];
    const long b = e < 0 ? 0 : pads[e], a = e < 0 ? 0 : pads[e + k];
    if (i == 0 && dim + b + a != meta[d]) guard[0] = flag;
    const long lo = max(-b, 0L), len = max(dim - lo - max(-a, 0L), 1L);
    long j = c - max(b, 0L);
    if (mode == 0) {
      outside = outside || j < 0 || j >= len;
    } else if (mode == 1) {
      j = clamp(j, 0L, len - 1);
    } else if (mode == 2) {
      const long period = 2 * (len - 1);
      j = period ? ((j % period) + period) % period : 0;
      if (j >= len) j = period - j;
    } else {
      j = ((j % len) + len) % len;
    }
    off += clamp(lo + j, 0L, dim - 1) * meta[12 + d];
  }
  y[i] = outside ? fill[0] : x[off];
}
