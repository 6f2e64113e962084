// Fused backward kernels of the op layer (compiled to PTX by build.rs with the `cuda`
// feature only). Each replaces a chain of Candle tensor ops, every one a pass over the
// activation in global memory, by one pass:
//
// - layer_norm_input_grad: dx of LayerNorm, exact or with σ held constant (one block per row);
// - softmax_grad: dS = P ⊙ (dP − rowsum(dP ⊙ P)) of attention's softmax (one warp per row);
// - act_grad: grad · f'(z) (or relu(grad) · f'(z), guided backprop) of the smooth activations.
//
// Entry points exist for f32, f64, f16 and bf16 (`<name>_<dtype>`, Candle's naming);
// arithmetic runs in f32 (f64 for f64).

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

template <typename T> struct Acc { typedef float type; };
template <> struct Acc<double> { typedef double type; };

__device__ __forceinline__ float load(float v) { return v; }
__device__ __forceinline__ double load(double v) { return v; }
__device__ __forceinline__ float load(__half v) { return __half2float(v); }
__device__ __forceinline__ float load(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T store(typename Acc<T>::type v) { return v; }
template <> __device__ __forceinline__ __half store<__half>(float v) { return __float2half(v); }
template <> __device__ __forceinline__ __nv_bfloat16 store<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffff, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets it.
template <typename A> __device__ A block_sum(A v, A *shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  if (warp == 0) {
    A t = lane < warps ? shared[lane] : A(0);
    t = warp_sum(t);
    if (lane == 0) shared[32] = t;
  }
  __syncthreads();
  const A total = shared[32];
  __syncthreads();  // shared is reused by the next call
  return total;
}

__device__ __forceinline__ float rsqrt_(float v) { return rsqrtf(v); }
__device__ __forceinline__ double rsqrt_(double v) { return rsqrt(v); }

// dx = (a − mean(a) − x̂ ⊙ mean(a ⊙ x̂)) / σ with a = γ ⊙ dy (the mean(a ⊙ x̂) term only if exact).
template <typename T>
__device__ void layer_norm_input_grad(const T *x, const T *gamma, const T *dy, T *dx, int h,
                                      double eps, int exact) {
  typedef typename Acc<T>::type A;
  __shared__ A shared[33];
  const size_t row = blockIdx.x;
  x += row * h;
  dy += row * h;
  dx += row * h;
  A s = 0;
  for (int i = threadIdx.x; i < h; i += blockDim.x) s += load(x[i]);
  const A mean = block_sum(s, shared) / A(h);
  A v = 0;
  for (int i = threadIdx.x; i < h; i += blockDim.x) {
    const A d = load(x[i]) - mean;
    v += d * d;
  }
  const A inv = rsqrt_(block_sum(v, shared) / A(h) + A(eps));
  A m1 = 0, m2 = 0;
  for (int i = threadIdx.x; i < h; i += blockDim.x) {
    const A a = load(gamma[i]) * load(dy[i]);
    m1 += a;
    m2 += a * (load(x[i]) - mean) * inv;
  }
  m1 = block_sum(m1, shared) / A(h);
  m2 = exact ? block_sum(m2, shared) / A(h) : A(0);
  for (int i = threadIdx.x; i < h; i += blockDim.x) {
    const A xhat = (load(x[i]) - mean) * inv;
    dx[i] = store<T>((load(gamma[i]) * load(dy[i]) - m1 - xhat * m2) * inv);
  }
}

// One warp per row of `cols`; `rows` rows in all.
template <typename T>
__device__ void softmax_grad(const T *p, const T *dp, T *ds, size_t rows, int cols) {
  typedef typename Acc<T>::type A;
  const size_t row = (size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  if (row >= rows) return;
  p += row * cols;
  dp += row * cols;
  ds += row * cols;
  A s = 0;
  for (int j = lane; j < cols; j += 32) s += load(p[j]) * load(dp[j]);
  s = warp_sum(s);
  for (int j = lane; j < cols; j += 32) ds[j] = store<T>(load(p[j]) * (load(dp[j]) - s));
}

// Activation codes, as `ops::cpu_act_smooth::cuda_code` numbers them.
enum Act { GELU = 0, GELU_TANH = 1, TANH = 2, SIGMOID = 3, SOFTPLUS = 4, ELU = 5,
           LEAKY_RELU = 6, RELU6 = 7, IDENTITY = 8, RELU = 9, SILU = 10 };

template <typename A> __device__ __forceinline__ A derivative(int act, A z, A param) {
  const A inv_sqrt_2pi = A(0.3989422804014327), sqrt_2_over_pi = A(0.7978845608028654);
  switch (act) {
  case GELU: return A(0.5) * (A(1) + erf(z * A(0.7071067811865476))) +
                    z * inv_sqrt_2pi * exp(A(-0.5) * z * z);
  case GELU_TANH: {
    const A k = A(0.044715);
    const A t = tanh(sqrt_2_over_pi * (z + k * z * z * z));
    return A(0.5) * (A(1) + t) +
           A(0.5) * z * (A(1) - t * t) * sqrt_2_over_pi * (A(1) + A(3) * k * z * z);
  }
  case TANH: { const A t = tanh(z); return A(1) - t * t; }
  case SIGMOID: { const A s = A(1) / (A(1) + exp(-z)); return s * (A(1) - s); }
  case SOFTPLUS: return A(1) / (A(1) + exp(-z));
  case ELU: return z > A(0) ? A(1) : param * exp(z);
  case LEAKY_RELU: return z > A(0) ? A(1) : param;
  case RELU6: return (z > A(0) && z < A(6)) ? A(1) : A(0);
  case RELU: return z > A(0) ? A(1) : A(0);
  case SILU: { const A s = A(1) / (A(1) + exp(-z)); return s * (A(1) + z * (A(1) - s)); }
  default: return A(1);
  }
}

template <typename T>
__device__ void act_grad(const T *z, const T *g, T *out, size_t n, int act, int guided,
                         double param) {
  typedef typename Acc<T>::type A;
  for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += (size_t)gridDim.x * blockDim.x) {
    A gv = load(g[i]);
    if (guided && gv < A(0)) gv = A(0);
    out[i] = store<T>(gv * derivative<A>(act, load(z[i]), A(param)));
  }
}

#define ENTRY_POINTS(T, NAME)                                                                    \
  extern "C" __global__ void layer_norm_input_grad_##NAME(const T *x, const T *gamma,          \
                                                          const T *dy, T *dx, int h,           \
                                                          double eps, int exact) {             \
    layer_norm_input_grad<T>(x, gamma, dy, dx, h, eps, exact);                                 \
  }                                                                                              \
  extern "C" __global__ void softmax_grad_##NAME(const T *p, const T *dp, T *ds, size_t rows,  \
                                                 int cols) {                                   \
    softmax_grad<T>(p, dp, ds, rows, cols);                                                    \
  }                                                                                              \
  extern "C" __global__ void act_grad_##NAME(const T *z, const T *g, T *out, size_t n, int act, \
                                             int guided, double param) {                       \
    act_grad<T>(z, g, out, n, act, guided, param);                                             \
  }

ENTRY_POINTS(float, f32)
ENTRY_POINTS(double, f64)
ENTRY_POINTS(__half, f16)
ENTRY_POINTS(__nv_bfloat16, bf16)
