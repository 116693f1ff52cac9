// Matrix products. gemm_packed: B is a constant packed at plan time as [ceil(N/16)][K][16] (alpha folded
// in); each work-item computes GM rows x 16 columns. gemm_col: the same packing, one column x GM rows per
// work-item (GPU-shaped: consecutive work-items read consecutive columns). gemm_tiled (defined when WM is):
// __local-memory tiles, B packed as [Kp][Np]. matmul: both operands at run time, any strides, per-batch
// offsets from a table (broadcast batch dimensions), MR x NR outputs per work-item.

#ifndef GM
#define GM 4
#endif
#ifndef MR
#define MR 4
#endif
#ifndef NR
#define NR 4
#endif

// Y[m][n] = act(sum_k A[m*sam + k*sak] * Bp[n][k] + bias[n] + beta * C[m*csm + n*csn]).
__kernel void gemm_packed(__global const T* restrict a, __global const T* restrict bp,
                          __global const T* restrict bias, __global const T* restrict c,
                          __global T* restrict y, int M, int N, int K, int sam, int sak,
                          int has_c, int csm, int csn, float beta, float p0, float p1)
{
  const int nb = get_global_id(0);
  const int m0 = get_global_id(1) * GM;
  if (nb * 16 >= N || m0 >= M) return;
  const __global T* bcol = bp + (size_t)nb * K * 16;
  const float16 b0 = LD16(bias, nb * 16);
  float16 acc[GM];
  const __global T* ar[GM];
#pragma unroll
  for (int i = 0; i < GM; i++) {
    acc[i] = b0;
    ar[i] = a + (size_t)min(m0 + i, M - 1) * sam;
  }
  for (int k = 0; k < K; k++) {
    const float16 bv = LD16(bcol, k * 16);
    const size_t ak = (size_t)k * sak;
#pragma unroll
    for (int i = 0; i < GM; i++) acc[i] = MULADD((float16)(LD(ar[i], ak)), bv, acc[i]);
  }
  for (int i = 0; i < GM && m0 + i < M; i++) {
    const int m = m0 + i;
    float t[16];
    PST16(t, acc[i]);
    if (has_c) {
      for (int l = 0; l < 16 && nb * 16 + l < N; l++) t[l] += beta * LD(c, (size_t)m * csm + (size_t)(nb * 16 + l) * csn);
    }
    const size_t base = (size_t)m * N + nb * 16;
    if (nb * 16 + 16 <= N) {
      ST16(y, base, ACTIVATE(PLD16(t), p0, p1));
    } else {
      for (int l = 0; nb * 16 + l < N; l++) ST(y, base + l, ACTIVATE(t[l], p0, p1));
    }
  }
}

// gemm_packed with 32 columns (two 16-column blocks of the packing) x GM rows per work-item: twice the
// multiply-adds per load of A, 2 * GM vector accumulators (16 at GM = 8: half of AVX-512's registers).
__kernel void gemm_packed32(__global const T* restrict a, __global const T* restrict bp,
                            __global const T* restrict bias, __global const T* restrict c,
                            __global T* restrict y, int M, int N, int K, int sam, int sak,
                            int has_c, int csm, int csn, float beta, float p0, float p1)
{
  const int nb = get_global_id(0) * 2;
  const int m0 = get_global_id(1) * GM;
  const int nblocks = (N + 15) / 16;
  if (nb >= nblocks || m0 >= M) return;
  const int two = nb + 1 < nblocks;  // the last work-item of an odd block count has one block
  const __global T* b0p = bp + (size_t)nb * K * 16;
  const __global T* b1p = bp + (size_t)(nb + two) * K * 16;  // the same block again when alone: never stored
  float16 acc0[GM], acc1[GM];
  const __global T* ar[GM];
#pragma unroll
  for (int i = 0; i < GM; i++) {
    acc0[i] = LD16(bias, nb * 16);
    acc1[i] = LD16(bias, (nb + two) * 16);
    ar[i] = a + (size_t)min(m0 + i, M - 1) * sam;
  }
  for (int k = 0; k < K; k++) {
    const float16 bv0 = LD16(b0p, k * 16), bv1 = LD16(b1p, k * 16);
    const size_t ak = (size_t)k * sak;
#pragma unroll
    for (int i = 0; i < GM; i++) {
      const float16 av = (float16)(LD(ar[i], ak));
      acc0[i] = MULADD(av, bv0, acc0[i]);
      acc1[i] = MULADD(av, bv1, acc1[i]);
    }
  }
  for (int i = 0; i < GM && m0 + i < M; i++) {
    const int m = m0 + i;
    for (int h = 0; h <= two; h++) {
      const int n0 = (nb + h) * 16;
      float t[16];
      PST16(t, h ? acc1[i] : acc0[i]);
      if (has_c) {
        for (int l = 0; l < 16 && n0 + l < N; l++) t[l] += beta * LD(c, (size_t)m * csm + (size_t)(n0 + l) * csn);
      }
      const size_t base = (size_t)m * N + n0;
      if (n0 + 16 <= N) {
        ST16(y, base, ACTIVATE(PLD16(t), p0, p1));
      } else {
        for (int l = 0; n0 + l < N; l++) ST(y, base + l, ACTIVATE(t[l], p0, p1));
      }
    }
  }
}

// Batched Y[b][m][n] = act(sum_k A[aoff[b] + m*sam + k*sak] * B[boff[b] + k*sbk + n*sbn]).
__kernel void matmul(__global const T* restrict a, __global const T* restrict b,
                     __global T* restrict y, __global const int* restrict offs, int M, int N, int K,
                     int sam, int sak, int sbk, int sbn, int nbatch, float p0, float p1)
{
  const int n0 = get_global_id(0) * NR;
  const int m0 = get_global_id(1) * MR;
  const int bi = get_global_id(2);
  if (n0 >= N || m0 >= M || bi >= nbatch) return;
  const __global T* ab = a + offs[2 * bi];
  const __global T* bb = b + offs[2 * bi + 1];
  int rows[MR], cols[NR];
  for (int i = 0; i < MR; i++) rows[i] = min(m0 + i, M - 1);
  for (int j = 0; j < NR; j++) cols[j] = min(n0 + j, N - 1);
  float acc[MR][NR];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) acc[i][j] = 0.0f;
  for (int k = 0; k < K; k++) {
    float av[MR], bv[NR];
    for (int i = 0; i < MR; i++) av[i] = LD(ab, (size_t)rows[i] * sam + (size_t)k * sak);
    for (int j = 0; j < NR; j++) bv[j] = LD(bb, (size_t)k * sbk + (size_t)cols[j] * sbn);
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] = MULADD(av[i], bv[j], acc[i][j]);
  }
  __global T* yb = y + (size_t)bi * M * N;
  for (int i = 0; i < MR && m0 + i < M; i++)
    for (int j = 0; j < NR && n0 + j < N; j++)
      ST(yb, (size_t)(m0 + i) * N + n0 + j, ACTIVATE(acc[i][j], p0, p1));
}

// Batched Y = act(A @ B) with both operands contiguous at run time (attention's QK^T and AV): GM rows x 32
// columns per work-item, B's rows read as float16 vectors (CPUs; the 4 x 4 scalar block above ran QK^T of a
// 1500-frame encoder at 17 GFLOP/s). Range (ceil(N/32), ceil(M/GM), batches).
inline float16 row16(const __global T* r, int n0, int N)
{
  if (n0 + 16 <= N) return LD16(r, n0);
  float t[16];
  for (int l = 0; l < 16; l++) t[l] = n0 + l < N ? LD(r, n0 + l) : 0.0f;
  return PLD16(t);
}

__kernel void matmul16(__global const T* restrict a, __global const T* restrict b,
                       __global T* restrict y, __global const int* restrict offs, int M, int N, int K,
                       int nbatch, float p0, float p1)
{
  const int n0 = get_global_id(0) * 32;
  const int m0 = get_global_id(1) * GM;
  const int bi = get_global_id(2);
  if (n0 >= N || m0 >= M || bi >= nbatch) return;
  const __global T* ab = a + offs[2 * bi];
  const __global T* bb = b + offs[2 * bi + 1];
  float16 acc0[GM], acc1[GM];
  const __global T* ar[GM];
#pragma unroll
  for (int i = 0; i < GM; i++) {
    acc0[i] = acc1[i] = (float16)(0.0f);
    ar[i] = ab + (size_t)min(m0 + i, M - 1) * K;
  }
  const bool full = n0 + 32 <= N;
  for (int k = 0; k < K; k++) {
    const __global T* br = bb + (size_t)k * N;
    const float16 bv0 = full ? LD16(br, n0) : row16(br, n0, N);
    const float16 bv1 = full ? LD16(br, n0 + 16) : row16(br, n0 + 16, N);
#pragma unroll
    for (int i = 0; i < GM; i++) {
      const float16 av = (float16)(LD(ar[i], k));
      acc0[i] = MULADD(av, bv0, acc0[i]);
      acc1[i] = MULADD(av, bv1, acc1[i]);
    }
  }
  __global T* yb = y + (size_t)bi * M * N;
  for (int i = 0; i < GM && m0 + i < M; i++) {
    __global T* yr = yb + (size_t)(m0 + i) * N;
    if (full) {
      ST16(yr, n0, ACTIVATE(acc0[i], p0, p1));
      ST16(yr, n0 + 16, ACTIVATE(acc1[i], p0, p1));
    } else {
      float t[32];
      PST16(t, acc0[i]);
      PST16(t + 16, acc1[i]);
      for (int l = 0; l < 32 && n0 + l < N; l++) ST(yr, n0 + l, ACTIVATE(t[l], p0, p1));
    }
  }
}

// One column n x GM rows per work-item, B packed as gemm_packed's; range (N, ceil(M/GM)).
__kernel void gemm_col(__global const T* restrict a, __global const T* restrict bp,
                       __global const T* restrict bias, __global const T* restrict c,
                       __global T* restrict y, int M, int N, int K, int sam, int sak,
                       int has_c, int csm, int csn, float beta, float p0, float p1)
{
  const int n = get_global_id(0);
  const int m0 = get_global_id(1) * GM;
  if (n >= N || m0 >= M) return;
  const __global T* bcol = bp + (size_t)(n / 16) * K * 16 + n % 16;
  const float b0 = LD(bias, n);
  float acc[GM];
  const __global T* ar[GM];
#pragma unroll
  for (int i = 0; i < GM; i++) {
    acc[i] = b0;
    ar[i] = a + (size_t)min(m0 + i, M - 1) * sam;
  }
  for (int k = 0; k < K; k++) {
    const float bv = LD(bcol, k * 16);
    const size_t ak = (size_t)k * sak;
#pragma unroll
    for (int i = 0; i < GM; i++) acc[i] = MULADD(LD(ar[i], ak), bv, acc[i]);
  }
#pragma unroll
  for (int i = 0; i < GM; i++) {
    const int m = m0 + i;
    if (m >= M) break;
    float v = acc[i];
    if (has_c) v += beta * LD(c, (size_t)m * csm + (size_t)n * csn);
    ST(y, (size_t)m * N + n, ACTIVATE(v, p0, p1));
  }
}

#ifdef WM
// Y[m][n] as gemm_packed, through __local tiles: a 16x16 work-group computes TM x TN outputs (TM = 16*WM
// rows, TN = 16*WN columns), work-item (tx, ty) rows ty + 16*i and columns tx + 16*j (coalesced stores).
// b: [K][N] (the constant B as is), bias: [N]. Range (ceil(N/TN)*16, ceil(M/TM)*16).
#define TK 16
#define TM (16 * WM)
#define TN (16 * WN)
__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void gemm_tiled(__global const T* restrict a, __global const T* restrict b, __global const T* restrict bias,
                __global const T* restrict c, __global T* restrict y, int M, int N, int K, int sam,
                int sak, int has_c, int csm, int csn, float beta, float p0, float p1)
{
  __local float ls[TK][TM + 1];  // +1: the column-wise stores below hit distinct banks
  __local float rs[TK][TN];
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int lid = ty * 16 + tx;
  const int n0 = get_group_id(0) * TN;
  const int m0 = get_group_id(1) * TM;
  float acc[WM][WN];
#pragma unroll
  for (int i = 0; i < WM; i++)
#pragma unroll
    for (int j = 0; j < WN; j++) acc[i][j] = 0.0f;
  for (int k0 = 0; k0 < K; k0 += TK) {
#pragma unroll
    for (int i = 0; i < WM; i++) {
      // Consecutive work-items read consecutive k of one row of A (coalesced when sak == 1).
      const int e = lid + 256 * i;
      const int mm = e / TK, kk = e % TK;
      const int m = m0 + mm, k = k0 + kk;
      ls[kk][mm] = (m < M && k < K) ? LD(a, (size_t)m * sam + (size_t)k * sak) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < WN; j++) {
      const int e = lid + 256 * j;
      const int k = k0 + e / TN, n = n0 + e % TN;
      rs[e / TN][e % TN] = (k < K && n < N) ? LD(b, (size_t)k * N + n) : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int kk = 0; kk < TK; kk++) {
      float av[WM], bv[WN];
#pragma unroll
      for (int i = 0; i < WM; i++) av[i] = ls[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < WN; j++) bv[j] = rs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < WM; i++)
#pragma unroll
        for (int j = 0; j < WN; j++) acc[i][j] = MULADD(av[i], bv[j], acc[i][j]);
    }
    barrier(CLK_LOCAL_MEM_FENCE);
  }
#pragma unroll
  for (int i = 0; i < WM; i++) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < WN; j++) {
      const int n = n0 + tx + 16 * j;
      if (n >= N) continue;
      float v = acc[i][j] + LD(bias, n);
      if (has_c) v += beta * LD(c, (size_t)m * csm + (size_t)n * csn);
      ST(y, (size_t)m * N + n, ACTIVATE(v, p0, p1));
    }
  }
}
#endif

#ifdef KS
// Y[m][n] for few rows (a GEMV): a work-group of TNC x KS work-items owns TNC columns of one row; each
// work-item sums every KS-th k of its column (loads of B coalesce along the columns), then the KS partial
// sums meet in __local memory. b: [K][N] (the constant B as is), bias: [N]. Range (ceil(N/TNC)*TNC, KS, M).
#define TNC (256 / KS)
__kernel __attribute__((reqd_work_group_size(TNC, KS, 1)))
void gemm_ksplit(__global const T* restrict a, __global const T* restrict b, __global const T* restrict bias,
                 __global const T* restrict c, __global T* restrict y, int M, int N, int K, int sam, int sak,
                 int has_c, int csm, int csn, float beta, float p0, float p1)
{
  __local float part[KS][TNC];
  const int tx = get_local_id(0), ty = get_local_id(1);
  const int n = get_global_id(0), m = get_global_id(2);
  const bool live = n < N && m < M;  // no early return: every work-item reaches the barrier
  float acc = 0.0f;
  if (live) {
    for (int k = ty; k < K; k += KS) acc = MULADD(LD(a, (size_t)m * sam + (size_t)k * sak), LD(b, (size_t)k * N + n), acc);
  }
  part[ty][tx] = acc;
  barrier(CLK_LOCAL_MEM_FENCE);
  if (ty == 0 && live) {
    float v = 0.0f;
    for (int s = 0; s < KS; s++) v += part[s][tx];
    v += LD(bias, n);
    if (has_c) v += beta * LD(c, (size_t)m * csm + (size_t)n * csn);
    ST(y, (size_t)m * N + n, ACTIVATE(v, p0, p1));
  }
}
#endif
