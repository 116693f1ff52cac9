// Matrix products. gemm_packed: B is a constant packed at plan time as [ceil(N/16)][K][16] (alpha folded
// in); each work-item computes 4 rows x 16 columns. matmul: both operands at run time, any strides,
// per-batch offsets from a table (broadcast batch dimensions), 4 x 4 outputs per work-item.

// Y[m][n] = act(sum_k A[m*sam + k*sak] * Bp[n][k] + bias[n] + beta * C[m*csm + n*csn]).
__kernel void gemm_packed(__global const T* restrict a, __global const T* restrict bp,
                          __global const T* restrict bias, __global const T* restrict c,
                          __global T* restrict y, int M, int N, int K, int sam, int sak,
                          int has_c, int csm, int csn, float beta, float p0, float p1)
{
  const int nb = get_global_id(0);
  const int m0 = get_global_id(1) * 4;
  if (nb * 16 >= N || m0 >= M) return;
  const __global T* bcol = bp + (size_t)nb * K * 16;
  const float16 b0 = LD16(bias, nb * 16);
  float16 acc0 = b0, acc1 = b0, acc2 = b0, acc3 = b0;
  const int r1 = min(m0 + 1, M - 1), r2 = min(m0 + 2, M - 1), r3 = min(m0 + 3, M - 1);
  const __global T* a0 = a + (size_t)m0 * sam;
  const __global T* a1 = a + (size_t)r1 * sam;
  const __global T* a2 = a + (size_t)r2 * sam;
  const __global T* a3 = a + (size_t)r3 * sam;
  for (int k = 0; k < K; k++) {
    const float16 bv = LD16(bcol, k * 16);
    const size_t ak = (size_t)k * sak;
    acc0 = fma((float16)(LD(a0, ak)), bv, acc0);
    acc1 = fma((float16)(LD(a1, ak)), bv, acc1);
    acc2 = fma((float16)(LD(a2, ak)), bv, acc2);
    acc3 = fma((float16)(LD(a3, ak)), bv, acc3);
  }
  float16 accs[4] = {acc0, acc1, acc2, acc3};
  for (int i = 0; i < 4 && m0 + i < M; i++) {
    const int m = m0 + i;
    float t[16];
    vstore16(accs[i], 0, t);
    if (has_c) {
      for (int l = 0; l < 16 && nb * 16 + l < N; l++) t[l] += beta * LD(c, (size_t)m * csm + (size_t)(nb * 16 + l) * csn);
    }
    const size_t base = (size_t)m * N + nb * 16;
    if (nb * 16 + 16 <= N) {
      ST16(y, base, ACTIVATE(vload16(0, t), p0, p1));
    } else {
      for (int l = 0; nb * 16 + l < N; l++) ST(y, base + l, ACTIVATE(t[l], p0, p1));
    }
  }
}

// Batched Y[b][m][n] = act(sum_k A[aoff[b] + m*sam + k*sak] * B[boff[b] + k*sbk + n*sbn]).
__kernel void matmul(__global const T* restrict a, __global const T* restrict b,
                     __global T* restrict y, __global const int* restrict offs, int M, int N, int K,
                     int sam, int sak, int sbk, int sbn, float p0, float p1)
{
  const int n0 = get_global_id(0) * 4;
  const int m0 = get_global_id(1) * 4;
  const int bi = get_global_id(2);
  if (n0 >= N || m0 >= M) return;
  const __global T* ab = a + offs[2 * bi];
  const __global T* bb = b + offs[2 * bi + 1];
  int rows[4], cols[4];
  for (int i = 0; i < 4; i++) {
    rows[i] = min(m0 + i, M - 1);
    cols[i] = min(n0 + i, N - 1);
  }
  float acc[4][4] = {{0.0f}};
  for (int k = 0; k < K; k++) {
    float av[4], bv[4];
    for (int i = 0; i < 4; i++) {
      av[i] = LD(ab, (size_t)rows[i] * sam + (size_t)k * sak);
      bv[i] = LD(bb, (size_t)k * sbk + (size_t)cols[i] * sbn);
    }
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) acc[i][j] = fma(av[i], bv[j], acc[i][j]);
  }
  __global T* yb = y + (size_t)bi * M * N;
  for (int i = 0; i < 4 && m0 + i < M; i++)
    for (int j = 0; j < 4 && n0 + j < N; j++)
      ST(yb, (size_t)(m0 + i) * N + n0 + j, ACTIVATE(acc[i][j], p0, p1));
}
