// Data movement, by element size only: ELT is uchar / ushort / uint / ulong, so one program serves
// every dtype of that width (half and float storage included).
#ifndef ELT
#define ELT uint
#endif
#ifndef IDX
#define IDX long
#endif

// Strided copy over up to 6 dims: y[doff + sum(c_d * ds_d)] = x[soff + sum(c_d * ss_d)] for every index c
// of dims. meta = dims[6], source strides[6], source offset, destination strides[6], destination offset.
// Covers Transpose, Slice, Expand, Split, Concat (one launch per input) and plain copies.
// RANK: the dims left after lower/eltwise.collapse merged them (right-aligned in meta); one division per dim
// but the outermost.
#ifndef RANK
#define RANK 6
#endif
#ifndef ROW_SS
#define ROW_SS 0
#define ROW_DS 0
#endif
// By element, or with -DROWS by rows (WALK_START, common.cl): the last dim's strides ROW_SS and ROW_DS
// compiled in (a contiguous row copies as vectors on PoCL) and n its length.
__kernel void copy_nd(__global const ELT* restrict x, __global ELT* restrict y,
                      __global const int* restrict meta, int n)
{
  WALK_START(n)
  int s = meta[12] + col * ROW_SS, d = meta[19] + col * ROW_DS;
  for (int k = WALK_FIRST; k > 6 - RANK; k--) {
    const int c = rem % meta[k];
    rem /= meta[k];
    s += c * meta[6 + k];
    d += c * meta[13 + k];
  }
  s += rem * meta[12 - RANK];
  d += rem * meta[19 - RANK];
  y[d] = x[s];
}

// y[i] = map[i] >= 0 ? x[map[i]] : fill, with the map made at plan time by running the reference op on
// element indices (Pad in any mode, Tile, DepthToSpace, SpaceToDepth, Trilu, ...).
__kernel void index_map(__global const ELT* restrict x, __global ELT* restrict y,
                        __global const int* restrict map, ELT fill, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const int j = map[i];
  y[i] = j >= 0 ? x[j] : fill;
}

// Gather along one axis: data viewed as [outer][axis][inner], indices [nidx] (negative counts from the
// end), y as [outer][nidx][inner].
__kernel void gather(__global const ELT* restrict x, __global const IDX* restrict idx,
                     __global ELT* restrict y, int axis_dim, int nidx, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const int in = i % inner;
  const int j = (i / inner) % nidx;
  const int o = i / (inner * nidx);
  long k = idx[j];
  if (k < 0) k += axis_dim;
  y[i] = x[((size_t)o * axis_dim + (size_t)k) * inner + in];
}

#ifndef ROW_SC
#define ROW_SC 0
#define ROW_SA 0
#define ROW_SB 0
#endif
// Where(cond, a, b) broadcast over up to 6 dims: meta = out dims[6], strides of cond, a, b [6 each], merged to
// RANK dims by lower/eltwise.collapse and right-aligned; by element, or with -DROWS by rows (WALK_START) with
// the last dim's strides ROW_SC, ROW_SA, ROW_SB compiled in and n its length.
__kernel void where(__global const uchar* restrict cond, __global const ELT* restrict a,
                    __global const ELT* restrict b, __global ELT* restrict y,
                    __global const int* restrict meta, int n)
{
  WALK_START(n)
  int ic = col * ROW_SC, ia = col * ROW_SA, ib = col * ROW_SB;
  for (int k = WALK_FIRST; k > 6 - RANK; k--) {
    const int c = rem % meta[k];
    rem /= meta[k];
    ic += c * meta[6 + k];
    ia += c * meta[12 + k];
    ib += c * meta[18 + k];
  }
  ic += rem * meta[12 - RANK];
  ia += rem * meta[18 - RANK];
  ib += rem * meta[24 - RANK];
  y[i] = cond[ic] ? a[ia] : b[ib];
}

// One axis of Resize: y[o, j, i] = bias[j] + sum_k w[j][k] * x[o, idx[j][k], i] over [outer][size|out][inner]
// (linear, cubic, antialias; bias holds tf_crop_and_resize's extrapolation value where every weight is 0).
__kernel void resize_axis(__global const T* restrict x, __global T* restrict y, __global const int* restrict idx,
                          __global const T* restrict w, __global const T* restrict bias, int size, int out,
                          int inner, int K, int n)
{
  const int g = get_global_id(0);
  if (g >= n) return;
  const int i = g % inner, j = (g / inner) % out, o = g / (inner * out);
  const size_t base = (size_t)o * size * inner + i;
  float acc = LD(bias, j);
  for (int k = 0; k < K; ++k) acc += LD(w, j * K + k) * LD(x, base + (size_t)idx[j * K + k] * inner);
  ST(y, g, acc);
}

// ScatterElements (reduction none), after y was copied from data: every update element u at index c of the
// indices' shape goes to c with its axis coordinate replaced by idx[c] (negative counts from the end).
// meta = indices dims[6], y strides[6]; axis in those 6-padded dims.
__kernel void scatter_elements(__global const IDX* restrict idx, __global const ELT* restrict u,
                               __global ELT* restrict y, __global const int* restrict meta, int axis,
                               int axis_dim, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  int rem = i;
  size_t off = 0;
  for (int d = 5; d >= 0; d--) {
    const int c = rem % meta[d];
    rem /= meta[d];
    if (d != axis) off += (size_t)c * meta[6 + d];
  }
  long k = idx[i];
  if (k < 0) k += axis_dim;
  y[off + (size_t)k * meta[6 + axis]] = u[i];
}

// ScatterND (reduction none), after y was copied from data: update row j (of `inner` elements) goes to the
// slice of y addressed by the k-tuple idx[j] (negative counts from the end). meta = y dims[k], y strides[k].
__kernel void scatter_nd(__global const IDX* restrict idx, __global const ELT* restrict u,
                         __global ELT* restrict y, __global const int* restrict meta, int k, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const int j = i / inner;
  size_t off = i % inner;
  for (int t = 0; t < k; t++) {
    long c = idx[(size_t)j * k + t];
    if (c < 0) c += meta[t];
    off += (size_t)c * meta[k + t];
  }
  y[off] = u[i];
}

// OneHot: y viewed as [outer][depth][inner], indices as [outer][inner]; values = (off, on) in y's type.
__kernel void one_hot(__global const IDX* restrict idx, __global const ELT* restrict values,
                      __global ELT* restrict y, int depth, int inner, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  const int in = i % inner, d = (i / inner) % depth, o = i / (inner * depth);
  long k = (long)idx[(size_t)o * inner + in];
  if (k < 0) k += depth;
  y[i] = values[k == d ? 1 : 0];
}

// A converted If (lower/control.py): both branches ran; y = the then-branch's value where the one-element
// condition holds, else the else-branch's, word by word (ELT: uint, or uchar for odd byte counts).
__kernel void if_select(__global const uchar* restrict cond, __global const ELT* restrict a,
                        __global const ELT* restrict b, __global ELT* restrict y, int n)
{
  const int i = get_global_id(0);
  if (i >= n) return;
  y[i] = cond[0] ? a[i] : b[i];
}
