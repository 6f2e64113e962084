//! A Vision Transformer image classifier from a Hugging Face folder (`config.json` with
//! `model_type: "vit"`, `model.safetensors`, `preprocessor_config.json`): patch embedding (a
//! conv with stride = patch size), the `[CLS]` token and learned positions, pre-LayerNorm
//! encoder layers, the final LayerNorm and a linear head on `[CLS]` (transformers'
//! `ViTForImageClassification`, hub tensor names).
//!
//! Methods attribute at `pixel_values`, the normalised image (`ViTImageProcessor`'s
//! rescale and mean / std, [`VitClassifier::normalize`]). Every layer runs on the rule
//! context's ops, so the LRP composites and layer methods (`embeddings`,
//! `encoder.layer.N`) apply as for BERT.

use crate::error::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain_core::nn::{Conv2d, LayerNorm, Linear};
use candle_explain_core::ops::conv::ConvGeometry;
use candle_explain_core::{Activation, Explainable, RuleCtx};
use candle_nn::VarBuilder;
use std::path::Path;

fn unsupported(reason: String) -> Error {
    candle_explain_core::Error::Unsupported(reason).into()
}

#[derive(Debug, Clone, PartialEq)]
pub struct VitConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    pub image_size: usize,
    pub patch_size: usize,
    pub num_channels: usize,
    pub num_labels: usize,
    /// The classes' names (`id2label`; `"class i"` where it names none).
    pub labels: Vec<String>,
    /// `preprocessor_config.json`: pixels 0..=255 × `rescale`, then `(x − mean) / std`.
    pub rescale: f64,
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl VitConfig {
    /// `config.json` and (optional) `preprocessor_config.json` texts.
    pub fn from_json(config: &str, preprocessor: Option<&str>) -> Result<Self> {
        let v: serde_json::Value = serde_json::from_str(config)
            .map_err(|e| unsupported(format!("config.json is not JSON: {e}")))?;
        if v.get("model_type").and_then(|t| t.as_str()) != Some("vit") {
            return Err(unsupported(format!(
                "model_type {:?} is not \"vit\"",
                v.get("model_type")
            )));
        }
        let size = |k: &str| -> Result<usize> {
            v.get(k)
                .and_then(|x| x.as_u64())
                .filter(|x| *x > 0)
                .map(|x| x as usize)
                .ok_or_else(|| {
                    unsupported(format!("config.json: {k:?} must be a positive integer"))
                })
        };
        let hidden_act = match v
            .get("hidden_act")
            .and_then(|a| a.as_str())
            .unwrap_or("gelu")
        {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => {
                return Err(unsupported(format!(
                    "hidden_act {other:?} is not supported"
                )))
            }
        };
        let num_labels = v
            .get("id2label")
            .and_then(|m| m.as_object())
            .map(|m| m.len())
            .or_else(|| {
                v.get("num_labels")
                    .and_then(|n| n.as_u64())
                    .map(|n| n as usize)
            })
            .unwrap_or(2)
            .max(1);
        let labels = crate::bert::labels(&v, num_labels)?;
        let p: serde_json::Value = match preprocessor {
            Some(t) => serde_json::from_str(t)
                .map_err(|e| unsupported(format!("preprocessor_config.json is not JSON: {e}")))?,
            None => serde_json::json!({}),
        };
        let floats = |k: &str, default: f64| -> Result<Vec<f64>> {
            match p.get(k) {
                None => Ok(vec![default; 3]),
                Some(a) => a
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_f64()).collect::<Vec<f64>>())
                    .filter(|a| !a.is_empty())
                    .ok_or_else(|| {
                        unsupported(format!(
                            "preprocessor_config.json: {k:?} must be a list of numbers"
                        ))
                    }),
            }
        };
        let normalize = p
            .get("do_normalize")
            .and_then(|b| b.as_bool())
            .unwrap_or(true);
        let c = Self {
            hidden_size: size("hidden_size")?,
            num_hidden_layers: size("num_hidden_layers")?,
            num_attention_heads: size("num_attention_heads")?,
            intermediate_size: size("intermediate_size")?,
            hidden_act,
            layer_norm_eps: v
                .get("layer_norm_eps")
                .and_then(|e| e.as_f64())
                .unwrap_or(1e-12),
            image_size: size("image_size")?,
            patch_size: size("patch_size")?,
            num_channels: size("num_channels").unwrap_or(3),
            num_labels,
            labels,
            rescale: match p
                .get("do_rescale")
                .and_then(|b| b.as_bool())
                .unwrap_or(true)
            {
                true => p
                    .get("rescale_factor")
                    .and_then(|r| r.as_f64())
                    .unwrap_or(1.0 / 255.0),
                false => 1.0,
            },
            mean: if normalize {
                floats("image_mean", 0.5)?
            } else {
                vec![0.0; 3]
            },
            std: if normalize {
                floats("image_std", 0.5)?
            } else {
                vec![1.0; 3]
            },
        };
        if !c.hidden_size.is_multiple_of(c.num_attention_heads)
            || !c.image_size.is_multiple_of(c.patch_size)
            || c.mean.len() != c.num_channels
            || c.std.len() != c.num_channels
            || c.std.contains(&0.0)
        {
            return Err(unsupported(format!(
                "inconsistent ViT config: hidden {} / heads {}, image {} / patch {}, {} channels, mean {:?}, std {:?}",
                c.hidden_size, c.num_attention_heads, c.image_size, c.patch_size, c.num_channels, c.mean, c.std
            )));
        }
        Ok(c)
    }
}

#[derive(Debug, Clone)]
struct VitLayer {
    norm_before: LayerNorm,
    query: Linear,
    key: Linear,
    value: Linear,
    attention_out: Linear,
    norm_after: LayerNorm,
    intermediate: Linear,
    output: Linear,
}

#[derive(Debug, Clone)]
pub struct VitClassifier {
    pub config: VitConfig,
    patch: Conv2d,
    cls_token: Tensor,
    position_embeddings: Tensor,
    layers: Vec<VitLayer>,
    norm: LayerNorm,
    classifier: Linear,
}

impl VitClassifier {
    pub fn load(vb: VarBuilder, config: VitConfig) -> Result<Self> {
        let vit = if vb.contains_tensor("vit.embeddings.cls_token") {
            vb.pp("vit")
        } else {
            vb.clone()
        };
        let c = &config;
        let (h, eps) = (c.hidden_size, c.layer_norm_eps);
        let patches = (c.image_size / c.patch_size).pow(2);
        let e = vit.pp("embeddings");
        let geometry = ConvGeometry {
            stride: c.patch_size,
            ..Default::default()
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let l = vit.pp(format!("encoder.layer.{i}"));
                Ok(VitLayer {
                    norm_before: LayerNorm::load(l.pp("layernorm_before"), h, eps)?,
                    query: Linear::load(l.pp("attention.attention.query"), h, h)?,
                    key: Linear::load(l.pp("attention.attention.key"), h, h)?,
                    value: Linear::load(l.pp("attention.attention.value"), h, h)?,
                    attention_out: Linear::load(l.pp("attention.output.dense"), h, h)?,
                    norm_after: LayerNorm::load(l.pp("layernorm_after"), h, eps)?,
                    intermediate: Linear::load(l.pp("intermediate.dense"), h, c.intermediate_size)?,
                    output: Linear::load(l.pp("output.dense"), c.intermediate_size, h)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            patch: Conv2d::load(
                e.pp("patch_embeddings.projection"),
                c.num_channels,
                h,
                c.patch_size,
                geometry,
            )?,
            cls_token: e.get((1, 1, h), "cls_token")?,
            position_embeddings: e.get((1, patches + 1, h), "position_embeddings")?,
            layers,
            norm: LayerNorm::load(vit.pp("layernorm"), h, eps)?,
            classifier: Linear::load(vb.pp("classifier"), h, c.num_labels)?,
            config,
        })
    }

    /// A Hugging Face folder: `config.json`, `model.safetensors` (or shards with their index)
    /// and `preprocessor_config.json` when there is one.
    pub fn from_dir(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let read = |f: &str| std::fs::read_to_string(dir.join(f));
        let config = read("config.json")
            .map_err(|_| Error::MissingFile(dir.join("config.json").display().to_string()))?;
        let config =
            VitConfig::from_json(&config, read("preprocessor_config.json").ok().as_deref())?;
        let (vb, weights) = crate::checkpoint::mmap_folder(dir, DType::F32, device)?;
        Self::load(vb, config).map_err(|e| crate::checkpoint::checkpoint_error(&weights, e))
    }

    /// Pixels `0..=255` `(B, C, H, W)` (already at `image_size`) → `pixel_values`.
    pub fn normalize(&self, pixels: &Tensor) -> Result<Tensor> {
        let c = &self.config;
        let dev = pixels.device();
        let n = c.num_channels;
        let mean = Tensor::from_vec(
            c.mean.iter().map(|m| *m as f32).collect::<Vec<_>>(),
            (1, n, 1, 1),
            dev,
        )?;
        let inv_std = Tensor::from_vec(
            c.std.iter().map(|s| 1.0 / *s as f32).collect::<Vec<_>>(),
            (1, n, 1, 1),
            dev,
        )?;
        Ok(pixels
            .to_dtype(DType::F32)?
            .affine(c.rescale, 0.0)?
            .broadcast_sub(&mean)?
            .broadcast_mul(&inv_std)?)
    }
}

impl Explainable for VitClassifier {
    fn forward_with(&self, x: &Tensor, ctx: &RuleCtx) -> candle_explain_core::Result<Tensor> {
        let c = &self.config;
        if x.dims().len() != 4 || x.dims()[1..] != [c.num_channels, c.image_size, c.image_size] {
            return Err(candle_explain_core::Error::InputShape {
                expected: format!(
                    "(batch, {}, {}, {}) pixel values",
                    c.num_channels, c.image_size, c.image_size
                ),
                got: x.dims().to_vec(),
            });
        }
        let b = x.dim(0)?;
        let (h, heads) = (c.hidden_size, c.num_attention_heads);
        let hd = h / heads;
        let patches = self
            .patch
            .forward_with(x, ctx)?
            .flatten_from(2)?
            .transpose(1, 2)?;
        let cls = self
            .cls_token
            .to_dtype(x.dtype())?
            .broadcast_as((b, 1, h))?;
        let tokens = Tensor::cat(&[&cls, &patches.contiguous()?], 1)?
            .broadcast_add(&self.position_embeddings.to_dtype(x.dtype())?)?;
        let mut z = ctx.tap("embeddings", &tokens)?;
        let l = z.dim(1)?;
        let split = |t: Tensor| -> candle_explain_core::Result<Tensor> {
            Ok(t.reshape((b, l, heads, hd))?.transpose(1, 2)?)
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let y = layer.norm_before.forward_with(&z, ctx)?;
            let q = split(layer.query.forward_with(&y, ctx)?)?;
            let k = split(layer.key.forward_with(&y, ctx)?)?;
            let v = split(layer.value.forward_with(&y, ctx)?)?;
            let a = ctx
                .attention(&q, &k, &v, None, 1.0 / (hd as f64).sqrt())?
                .transpose(1, 2)?
                .reshape((b, l, h))?;
            z = ctx.add(&layer.attention_out.forward_with(&a, ctx)?, &z)?;
            let y = layer.norm_after.forward_with(&z, ctx)?;
            let m = ctx.activation(c.hidden_act, &layer.intermediate.forward_with(&y, ctx)?)?;
            z = ctx.tap(
                &format!("encoder.layer.{i}"),
                &ctx.add(&layer.output.forward_with(&m, ctx)?, &z)?,
            )?;
        }
        let z = self.norm.forward_with(&z, ctx)?;
        self.classifier
            .forward_with(&z.narrow(1, 0, 1)?.squeeze(1)?, ctx)
    }

    fn input_shape(&self) -> Option<Vec<usize>> {
        let c = &self.config;
        Some(vec![c.num_channels, c.image_size, c.image_size])
    }
}
