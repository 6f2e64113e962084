//! Kernels of the elementwise nonlinearities: ReLU's backward under each gradient-family
//! rule and DeepLIFT's multiplier (`relu_cpu`), and the other functions' forward and
//! `grad · f'(z)` in one pass (`smooth`, CPU and CUDA). They know the functions as their own
//! [`smooth::Function`]; `crate::Activation` converts into it.

pub(crate) mod relu_cpu;
pub(crate) mod smooth;
