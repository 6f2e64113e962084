//! # candle-explain-models
//!
//! Explainable classifiers: every model implements
//! [`Explainable`](candle_explain_core::Explainable) and loads through a `VarBuilder` with
//! PyTorch's tensor names, so real checkpoints load unchanged.

pub mod assets;
pub mod bert;
pub mod bert_finetune;
mod checkpoint;
pub mod data;
pub mod decoder;
pub mod digits_cnn;
pub mod efficientnet;
pub mod encoder_family;
pub mod error;
pub mod hub;
pub mod lstm_classifier;
pub mod mnist_cnn;
pub mod resnet;
pub mod small_resnet;
pub mod text;
pub mod train;
pub mod vit;

pub use bert::{BertClassifier, BertConfig};
pub use decoder::{CausalLm, DecoderConfig};
pub use digits_cnn::DigitsCnn;
pub use efficientnet::EfficientNetLite0;
pub use error::{Error, Result};
pub use lstm_classifier::{LstmClassifier, LstmConfig};
pub use mnist_cnn::MnistCnn;
pub use resnet::ResNet;
pub use small_resnet::{SmallResNet, SmallResNetConfig};
pub use vit::{VitClassifier, VitConfig};
