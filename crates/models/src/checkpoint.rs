//! Loading a model from a safetensors checkpoint: one place for the memory map and for the
//! errors that name the file (missing, damaged, or lacking / mis-shaping a tensor).

use crate::error::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use std::path::Path;

/// A `VarBuilder` over the memory-mapped file, computing in `dtype`.
pub(crate) fn mmap(path: &Path, dtype: DType, device: &Device) -> Result<VarBuilder<'static>> {
    if path.is_dir() {
        return Err(checkpoint_error(
            path,
            "this is a folder; expected a .safetensors file (a Hugging Face folder is loaded by \
             the models that take one, e.g. BertClassifier::from_dir)",
        ));
    }
    if !path.exists() {
        return Err(Error::MissingFile(path.display().to_string()));
    }
    // SAFETY: the file is memory-mapped read-only and not modified while loaded.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map_err(|e| checkpoint_error(path, e))?;
    Ok(VarBuilder::from_backend(
        Box::new(FloatWeights(st)),
        dtype,
        device.clone(),
    ))
}

/// The weights of a Hugging Face folder: `model.safetensors`, or the shards that
/// `model.safetensors.index.json`'s `weight_map` names, memory-mapped together, or else a
/// PyTorch `pytorch_model.bin`. Returns the
/// builder and the file errors should name.
pub(crate) fn mmap_folder(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<(VarBuilder<'static>, std::path::PathBuf)> {
    let single = dir.join("model.safetensors");
    if single.exists() {
        return Ok((mmap(&single, dtype, device)?, single));
    }
    let index = dir.join("model.safetensors.index.json");
    if !index.exists() {
        // A PyTorch pickle (older checkpoints): read whole, converted to `dtype`.
        let pth = dir.join("pytorch_model.bin");
        if pth.exists() {
            let vb =
                VarBuilder::from_pth(&pth, dtype, device).map_err(|e| checkpoint_error(&pth, e))?;
            return Ok((vb, pth));
        }
        return Err(Error::MissingFile(format!(
            "{} (nor a sharded checkpoint's {}, nor pytorch_model.bin)",
            single.display(),
            index.display()
        )));
    }
    let mut shards: Vec<std::path::PathBuf> = vec![];
    for name in index_shards(&index)? {
        let path = dir.join(name);
        if !path.exists() {
            return Err(Error::MissingFile(format!(
                "{} (a shard named by {})",
                path.display(),
                index.display()
            )));
        }
        shards.push(path);
    }
    // SAFETY: the files are memory-mapped read-only and not modified while loaded.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::multi(&shards) }
        .map_err(|e| checkpoint_error(&index, e))?;
    Ok((
        VarBuilder::from_backend(Box::new(FloatWeights(st)), dtype, device.clone()),
        index,
    ))
}

/// The shard files a `model.safetensors.index.json`'s `weight_map` names, each once, in the
/// order first named (file names in the index's folder only).
pub(crate) fn index_shards(index: &Path) -> Result<Vec<String>> {
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(index)?)
        .map_err(|e| checkpoint_error(index, format!("not JSON: {e}")))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| checkpoint_error(index, "no \"weight_map\" object"))?;
    let mut out: Vec<String> = vec![];
    for file in map.values() {
        let name = file
            .as_str()
            .filter(|f| !f.contains('/') && !f.contains('\\') && f.ends_with(".safetensors"))
            .ok_or_else(|| {
                checkpoint_error(
                    index,
                    format!("weight_map names {file}, not a .safetensors file in the folder"),
                )
            })?;
        if !out.iter().any(|o| o == name) {
            out.push(name.to_string());
        }
    }
    Ok(out)
}

/// The memory-mapped tensors, handing out only floating-point ones as weights: an integer
/// tensor asked for as a weight would otherwise be converted silently into nonsense.
/// (Integer buffers a model never asks for, like BERT's `position_ids`, are left alone.)
struct FloatWeights(candle_core::safetensors::MmapedSafetensors);

impl FloatWeights {
    fn load(
        &self,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        let stored = self.0.get(name)?.dtype();
        if !DType::try_from(stored).is_ok_and(|d| d.is_float()) {
            candle_core::bail!(
                "tensor {name:?} is {stored:?}; weights must be F16, BF16, F32 or F64"
            );
        }
        self.0.load(name, dev)?.to_dtype(dtype)
    }
}

impl candle_nn::var_builder::SimpleBackend for FloatWeights {
    fn get(
        &self,
        s: candle_core::Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        let t = self.load(name, dtype, dev)?;
        if t.shape() != &s {
            candle_core::bail!(
                "shape mismatch for {name}: expected {s:?}, got {:?}",
                t.shape()
            );
        }
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<candle_core::Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.0.get(name).is_ok()
    }
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
