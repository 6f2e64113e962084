//! Which model `--model` names, loaded with what its inputs need: the built-in checkpoints of
//! `weights/`, a Hugging Face BERT folder or hub id (offline cache), or an LSTM folder.

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::core::Explainable;
use candle_explain::models::efficientnet::imagenet_classes;
use candle_explain::models::lstm_classifier::encode_left_padded;
use candle_explain::models::small_resnet::FASHION_CLASSES;
use candle_explain::models::text::Vocab;
use candle_explain::models::{
    bert, BertClassifier, DigitsCnn, EfficientNetLite0, LstmClassifier, SmallResNet,
    SmallResNetConfig,
};
use std::path::{Path, PathBuf};

/// A file of `weights/`, looked up from the working directory first, then from the source tree
/// this binary was built from.
pub fn weights(file: &str) -> PathBuf {
    let local = Path::new("weights").join(file);
    if local.exists() {
        return local;
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("weights")
        .join(file)
}

/// A folder of `assets/` (`item` of `scripts/fetch-assets.sh`, e.g. "photos"): from the working
/// directory when it is there, otherwise from the source tree, fetched on first use.
pub fn assets(item: &str) -> Result<PathBuf> {
    let folder = candle_explain::models::assets::ITEMS
        .iter()
        .find(|(n, _)| *n == item)
        .map_or(item, |(_, f)| *f);
    let local = Path::new("assets").join(folder);
    if local.is_dir() {
        return Ok(local);
    }
    Ok(candle_explain::models::assets::ensure(item)?)
}

pub enum Loaded {
    Image(ImageModel),
    Text(Box<TextModel>),
}

/// Raw pixels 0..=255 → a model's input.
pub type Normalize = Box<dyn Fn(&Tensor) -> candle_explain::models::Result<Tensor>>;

pub struct ImageModel {
    pub name: String,
    pub model: Box<dyn Explainable>,
    /// Channels and side length of the input.
    pub channels: usize,
    pub size: usize,
    /// Raw pixels 0..=255 → the model's input.
    pub normalize: Normalize,
    /// The input value of a black pixel (the natural baseline).
    pub black: f64,
    pub classes: Vec<String>,
    /// The last conv stage's tap, for Grad-CAM's default layer.
    pub cam_layer: String,
}

pub struct TextModel {
    pub name: String,
    pub kind: TextKind,
    pub classes: Vec<String>,
}

pub enum TextKind {
    Bert {
        model: Box<BertClassifier>,
        tokenizer: Box<tokenizers::Tokenizer>,
    },
    Lstm {
        model: LstmClassifier,
        vocab: Vocab,
    },
}

impl TextModel {
    /// Word embeddings `(1, L, H)` of `text` (the point methods attribute at) and its tokens.
    pub fn embed(&self, text: &str, device: &Device) -> Result<(Tensor, Vec<String>)> {
        let (e, tokens, _) = self.embed_words(text, device)?;
        Ok((e, tokens))
    }

    /// [`TextModel::embed`] with the words the tokens make up (a piece-level tokenizer splits
    /// words; special tokens belong to none).
    pub fn embed_words(
        &self,
        text: &str,
        device: &Device,
    ) -> Result<(Tensor, Vec<String>, Vec<bert::Word>)> {
        Ok(match &self.kind {
            TextKind::Bert { model, tokenizer } => {
                let (ids, tokens, words) =
                    bert::encode_words(tokenizer, text, &model.config, device)?;
                (model.embed(&ids)?, tokens, words)
            }
            TextKind::Lstm { model, vocab } => {
                let n = candle_explain::models::text::tokenize(text).len();
                if n == 0 {
                    bail!("the text has no words");
                }
                let ids = encode_left_padded(vocab, &[text], n, device)?;
                let tokens: Vec<String> = vocab
                    .decode(&ids.squeeze(0)?.to_vec1::<u32>()?)
                    .iter()
                    .map(|w| w.to_string())
                    .collect();
                let words = tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t): (usize, &String)| bert::Word {
                        word: t.clone(),
                        tokens: vec![i],
                    })
                    .collect();
                (model.embed(&ids)?, tokens, words)
            }
        })
    }

    /// For a token-classification model, its labels per token (outputs are `(B, L · labels)`).
    pub fn token_labels(&self) -> Option<usize> {
        match &self.kind {
            TextKind::Bert { model, .. }
                if model.config.head == candle_explain::models::encoder_family::HeadKind::Token =>
            {
                Some(model.config.num_labels)
            }
            _ => None,
        }
    }

    pub fn explainable(&self) -> &dyn Explainable {
        match &self.kind {
            TextKind::Bert { model, .. } => model.as_ref(),
            TextKind::Lstm { model, .. } => model,
        }
    }
}

/// Resolves `spec`: `digits-cnn`, `fashion-resnet`, `efficientnet-lite0`, a folder (an LSTM
/// classifier when it has `vocab.json`, else a Hugging Face BERT folder), or a hub id.
pub fn load(spec: &str, dtype: DType, device: &Device) -> Result<Loaded> {
    let f32_only = |what: &str| -> Result<()> {
        if dtype != DType::F32 {
            bail!("{what} runs in f32 only (asked for {dtype:?})");
        }
        Ok(())
    };
    Ok(match spec {
        "digits-cnn" => Loaded::Image(ImageModel {
            name: spec.into(),
            model: Box::new(DigitsCnn::from_file_as(
                weights("digits_cnn.safetensors"),
                dtype,
                device,
            )?),
            channels: 1,
            size: 28,
            normalize: Box::new(DigitsCnn::normalize),
            black: -candle_explain::models::digits_cnn::MNIST_MEAN
                / candle_explain::models::digits_cnn::MNIST_STD,
            classes: (0..10).map(|d| d.to_string()).collect(),
            cam_layer: "conv_layers.7".into(),
        }),
        "fashion-resnet" => Loaded::Image(ImageModel {
            name: spec.into(),
            model: Box::new(
                SmallResNet::from_file_as(
                    weights("fashion_resnet.safetensors"),
                    SmallResNetConfig::fashion_mnist(),
                    dtype,
                    device,
                )?
                .canonized()?,
            ),
            channels: 1,
            size: 28,
            normalize: Box::new(SmallResNet::normalize),
            black: -candle_explain::models::small_resnet::FASHION_MEAN
                / candle_explain::models::small_resnet::FASHION_STD,
            classes: FASHION_CLASSES.iter().map(|s| s.to_string()).collect(),
            cam_layer: "layer3".into(),
        }),
        "efficientnet-lite0" => Loaded::Image(ImageModel {
            name: spec.into(),
            model: Box::new(EfficientNetLite0::from_file(
                weights("efficientnet_lite0.f16.safetensors"),
                dtype,
                device,
            )?),
            channels: 3,
            size: EfficientNetLite0::INPUT_SIZE,
            normalize: Box::new(EfficientNetLite0::normalize),
            black: -127.0 / 128.0,
            classes: imagenet_classes(weights("imagenet_classes.txt"))?,
            cam_layer: "_conv_head".into(),
        }),
        other => {
            let dir = if Path::new(other).is_dir() {
                PathBuf::from(other)
            } else if other.split('/').count() == 2
                && !other.starts_with('.')
                && !Path::new(other).exists()
            {
                // `org/name` or `org/name@revision`: from the hub cache, downloaded if missing
                // (HF_ENDPOINT, unless HF_HUB_OFFLINE).
                candle_explain::models::hub::snapshot_spec(other).with_context(|| format!("{other:?} is neither a built-in model (digits-cnn, fashion-resnet, efficientnet-lite0), a folder, nor a hub id that could be resolved"))?
            } else {
                bail!("unknown model {other:?}: use digits-cnn, fashion-resnet, efficientnet-lite0, a model folder or a hub id (org/name)");
            };
            if !dir.join("config.json").exists() {
                bail!("{}: no config.json (expected a Hugging Face folder or an LSTM classifier folder)", dir.display());
            }
            // A Vision Transformer folder is an image model.
            let config = std::fs::read_to_string(dir.join("config.json"))?;
            if serde_json::from_str::<serde_json::Value>(&config)
                .ok()
                .and_then(|v| {
                    v.get("model_type")
                        .and_then(|t| t.as_str())
                        .map(String::from)
                })
                .as_deref()
                == Some("vit")
            {
                f32_only("the ViT classifier")?;
                let vit = candle_explain::models::VitClassifier::from_dir(&dir, device)?;
                let c = vit.config.clone();
                let (mean, std, rescale) = (c.mean[0], c.std[0], c.rescale);
                let norm = vit.clone();
                return Ok(Loaded::Image(ImageModel {
                    name: other.into(),
                    model: Box::new(vit),
                    channels: c.num_channels,
                    size: c.image_size,
                    // Images per channel; a bare list of pixel values (the input range) with
                    // channel 0's statistics.
                    normalize: Box::new(move |p: &Tensor| match p.rank() {
                        4 => norm.normalize(p),
                        _ => Ok(p.affine(rescale / std, -mean / std)?),
                    }),
                    // Black in channel 0's terms (the processors' means and stds are usually
                    // the same for every channel).
                    black: -mean / std,
                    classes: c.labels.clone(),
                    cam_layer: format!("encoder.layer.{}", c.num_hidden_layers.saturating_sub(1)),
                }));
            }
            // The LSTM folders of `train_lstm_polarity` carry a word vocabulary (vocab.json).
            if !dir.join("vocab.json").exists() {
                let model = BertClassifier::from_dir_as(&dir, None, dtype, device)?;
                let tokenizer = bert::load_tokenizer(dir.join("tokenizer.json"), &model.config)?;
                // The checkpoint's own names (`id2label`), "class i" where it has none.
                let classes = model.config.labels.clone();
                Loaded::Text(Box::new(TextModel {
                    name: other.into(),
                    kind: TextKind::Bert {
                        model: Box::new(model),
                        tokenizer: Box::new(tokenizer),
                    },
                    classes,
                }))
            } else {
                f32_only("the LSTM classifier")?;
                let (model, vocab) = LstmClassifier::from_dir(&dir, device)?;
                Loaded::Text(Box::new(TextModel {
                    name: other.into(),
                    kind: TextKind::Lstm { model, vocab },
                    classes: vec!["negative".into(), "positive".into()],
                }))
            }
        }
    })
}

impl ImageModel {
    /// The model-input values of a black and a white pixel (the input range, for z^B and
    /// Gradient SHAP's baselines).
    pub fn input_range(&self, device: &Device) -> Result<(f64, f64)> {
        let r = (self.normalize)(&Tensor::new(&[0f32, 255.0], device)?)?.to_vec1::<f32>()?;
        Ok((r[0] as f64, r[1] as f64))
    }

    /// An image file resized to the model's input (grey for one-channel models), raw pixels
    /// and the resized picture.
    pub fn read_image(&self, path: &Path, device: &Device) -> Result<(Tensor, image::RgbImage)> {
        let (rgb, pic) = candle_explain::models::data::load_rgb(path, self.size, device)?;
        if self.channels == 3 {
            return Ok((rgb, pic));
        }
        // ITU-R 601 luma, as PIL's convert("L").
        let w = Tensor::new(&[0.299f32, 0.587, 0.114], device)?.reshape((1, 3, 1, 1))?;
        Ok((rgb.broadcast_mul(&w)?.sum_keepdim(1)?, pic))
    }

    /// Row `index` of the model's built-in dataset (MNIST digits or Fashion-MNIST test images):
    /// raw pixels `(1, 1, 28, 28)` and the label.
    pub fn dataset_row(&self, index: usize, device: &Device) -> Result<(Tensor, usize)> {
        let data = self.dataset(device)?;
        let n = data.labels.len();
        if index >= n {
            bail!(
                "--index {index} is out of range: the {} dataset has {n} images",
                self.name
            );
        }
        Ok((
            data.images.narrow(0, index, 1)?,
            data.labels[index] as usize,
        ))
    }

    pub fn dataset(&self, device: &Device) -> Result<candle_explain::models::data::Digits> {
        Ok(match self.name.as_str() {
            "digits-cnn" => candle_explain::models::data::load_mnist_csv(
                weights("data/mnist_5k.csv.gz"),
                device,
            )?,
            "fashion-resnet" => {
                let dir = assets("fashion-mnist")?;
                candle_explain::models::data::load_idx(
                    dir.join("t10k-images-idx3-ubyte.gz"),
                    dir.join("t10k-labels-idx1-ubyte.gz"),
                    device,
                )?
            }
            other => bail!("{other} has no built-in dataset: give --image"),
        })
    }
}
