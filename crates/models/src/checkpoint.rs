//! Loading a model from a safetensors checkpoint: one place for the memory map and for the
//! errors that name the file (missing, damaged, or lacking / mis-shaping a tensor).

use crate::error::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::Path;

/// A `VarBuilder` over the memory-mapped file, computing in `dtype`.
pub(crate) fn mmap(path: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    if !path.exists() {
        return Err(Error::MissingFile(path.display().to_string()));
    }
    // SAFETY: the file is memory-mapped read-only and not modified while loaded.
    unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, device) }
        .map_err(|e| checkpoint_error(path, e))
}

/// `load` applied to [`mmap`]'s builder; its errors (a missing or wrong-shaped tensor) name the file.
pub(crate) fn load<M, E: std::fmt::Display>(
    path: &Path,
    dtype: DType,
    device: &Device,
    load: impl FnOnce(VarBuilder<'static>) -> std::result::Result<M, E>,
) -> Result<M> {
    load(mmap(path, dtype, device)?).map_err(|e| checkpoint_error(path, e))
}

pub(crate) fn checkpoint_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}
