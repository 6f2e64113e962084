//! LayerNorm over the last dimension: the CPU kernels of its forward and of its input
//! gradient (exact, or with σ held constant); the CUDA kernel of the gradient is in
//! `ops::cuda`.

pub(crate) mod cpu;
