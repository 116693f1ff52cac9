// 2-D pooling on NCHW: one work-item per output pixel; window geometry as run-time arguments.
// -DPOOL_MAX or -DPOOL_AVG. pad_b / pad_r are the explicit end pads (count_include_pad counts up to them).

// The taps a window has inside [lo, hi] along one axis (first, end): the loops and the average's count then
// cost the window's overlap with the input, not its extent (a ceil_mode kernel of 2560 over a 7x7 map).
inline int2 tap_range(int start, int K, int D, int lo, int hi)
{
  const int first = start < lo ? (lo - start + D - 1) / D : 0;
  const int end = hi < start ? 0 : min(K, (hi - start) / D + 1);
  return (int2)(first, max(end, first));
}

__kernel void pool2d(__global const T* restrict x, __global T* restrict y, int H, int W, int OH, int OW,
                     int KH, int KW, int SH, int SW, int DH, int DW, int pad_t, int pad_l, int pad_b,
                     int pad_r, int count_include_pad)
{
  const int ox = get_global_id(0);
  const int oy = get_global_id(1);
  const int nc = get_global_id(2);
  if (ox >= OW || oy >= OH) return;
  const __global T* plane = x + (size_t)nc * H * W;
  const int y0 = oy * SH - pad_t, x0 = ox * SW - pad_l;
  const int2 ry = tap_range(y0, KH, DH, 0, H - 1), rx = tap_range(x0, KW, DW, 0, W - 1);
#ifdef POOL_MAX
  float acc = -FLT_MAX;
#else
  float acc = 0.0f;
#endif
  for (int ky = ry.x; ky < ry.y; ky++) {
    const int iy = y0 + ky * DH;
    for (int kx = rx.x; kx < rx.y; kx++) {
#ifdef POOL_MAX
      acc = VMAX(acc, LD(plane, iy * W + x0 + kx * DW));
#else
      acc += LD(plane, iy * W + x0 + kx * DW);
#endif
    }
  }
#ifdef POOL_AVG
  int count = (ry.y - ry.x) * (rx.y - rx.x);
  if (count_include_pad) {
    const int2 cy = tap_range(y0, KH, DH, -pad_t, H + pad_b - 1), cx = tap_range(x0, KW, DW, -pad_l, W + pad_r - 1);
    count = (cy.y - cy.x) * (cx.y - cx.x);
  }
  acc /= (float)max(count, 1);
#endif
  ST(y, ((size_t)nc * OH + oy) * OW + ox, acc);
}

// 3-D pooling: one work-item per output voxel; g[] = D, H, W, OD, OH, OW, then per axis (depth, height,
// width) kernel, stride, dilation, begin pad, end pad.
__kernel void pool3d(__global const T* restrict x, __global T* restrict y, __global const int* restrict g,
                     int count_include_pad)
{
  const int ox = get_global_id(0), oy = get_global_id(1);
  const int D = g[0], H = g[1], W = g[2], OD = g[3], OH = g[4], OW = g[5];
  const int od = get_global_id(2) % OD, nc = get_global_id(2) / OD;
  if (ox >= OW || oy >= OH) return;
  const __global T* vol = x + (size_t)nc * D * H * W;
#ifdef POOL_MAX
  float acc = -FLT_MAX;
#else
  float acc = 0.0f;
  int count = 0;
#endif
  for (int kz = 0; kz < g[6]; kz++) {
    const int iz = od * g[7] - g[9] + kz * g[8];
    for (int ky = 0; ky < g[11]; ky++) {
      const int iy = oy * g[12] - g[14] + ky * g[13];
      for (int kx = 0; kx < g[16]; kx++) {
        const int ix = ox * g[17] - g[19] + kx * g[18];
        const bool inside = iz >= 0 && iz < D && iy >= 0 && iy < H && ix >= 0 && ix < W;
#ifdef POOL_MAX
        if (inside) acc = VMAX(acc, LD(vol, ((size_t)iz * H + iy) * W + ix));
#else
        if (inside) acc += LD(vol, ((size_t)iz * H + iy) * W + ix);
        if (inside || (count_include_pad && iz >= -g[9] && iz < D + g[10] && iy >= -g[14] && iy < H + g[15]
                       && ix >= -g[19] && ix < W + g[20]))
          count++;
#endif
      }
    }
  }
#ifdef POOL_AVG
  acc /= (float)max(count, 1);
#endif
  ST(y, (((size_t)nc * OD + od) * OH + oy) * OW + ox, acc);
}

// Global pooling: one work-item per (n, c) plane of `size` elements.
__kernel void global_pool(__global const T* restrict x, __global T* restrict y, int size, int planes)
{
  const int i = get_global_id(0);
  if (i >= planes) return;
  const __global T* p = x + (size_t)i * size;
#ifdef POOL_MAX
  float acc = -INFINITY;
  for (int k = 0; k < size; k++) acc = VMAX(acc, LD(p, k));
#else
  float acc = 0.0f;
  int k = 0;
  float16 acc16 = (float16)(0.0f);
  for (; k + 16 <= size; k += 16) acc16 += LD16(p, k);
  for (; k < size; k++) acc += LD(p, k);
  float8 s8 = acc16.lo + acc16.hi;
  float4 s4 = s8.lo + s8.hi;
  acc += s4.x + s4.y + s4.z + s4.w;
  acc /= (float)size;
#endif
  ST(y, i, acc);
}

/* GPU global pooling: a work-group of POOL_WG items reduces each (n, c) plane through local memory, so a
   112x112 plane is read by 256 coalesced threads instead of one (the per-plane kernel above is 40% of
   EfficientNet-B0 on an H200). Groups stride over planes, so any group count is correct. */
#define POOL_WG 256
__kernel __attribute__((reqd_work_group_size(POOL_WG, 1, 1)))
void global_pool_wg(__global const T* restrict x, __global T* restrict y, int size, int planes)
{
  __local float part[POOL_WG];
  const int l = get_local_id(0);
  for (int i = get_group_id(0); i < planes; i += get_num_groups(0)) {
    const __global T* p = x + (size_t)i * size;
#ifdef POOL_MAX
    float acc = -INFINITY;
    for (int k = l; k < size; k += POOL_WG) acc = VMAX(acc, LD(p, k));
#else
    float acc = 0.0f;
    for (int k = l; k < size; k += POOL_WG) acc += LD(p, k);
#endif
    part[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = POOL_WG / 2; s > 0; s >>= 1) {
#ifdef POOL_MAX
      if (l < s) part[l] = VMAX(part[l], part[l + s]);
#else
      if (l < s) part[l] += part[l + s];
#endif
      barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (l == 0) {
#ifdef POOL_MAX
      ST(y, i, part[0]);
#else
      ST(y, i, part[0] / (float)size);
#endif
    }
    barrier(CLK_LOCAL_MEM_FENCE);  /* part[] is reused by the next plane */
  }
}
