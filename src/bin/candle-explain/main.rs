//! `candle-explain`: explain a prediction, or score attribution methods on a dataset.
//!
//! ```text
//! candle-explain explain  [--model digits-cnn] [--image FILE | --index N | --text TEXT] [--method integrated-gradients] …
//! candle-explain evaluate [--model digits-cnn] [--data DIR|FILE] [--methods saliency,…] [--metrics deletion,…] …
//! candle-explain explain-dataset --model fashion-resnet --methods saliency --out DIR [--shard i/N | --processes N]
//! candle-explain merge DIR
//! candle-explain methods
//! candle-explain reproduce lundstrom [--quick]
//! ```
//! Results go to `--out` (JSON, safetensors of the attributions, PNG / HTML / SVG pictures).

#[global_allocator]
static GLOBAL: candle_explain::alloc::Allocator = candle_explain::alloc::Allocator;

mod dataset_input;
mod dataset_job;
mod evaluate;
mod explain;
mod generate;
mod merge;
mod method;
mod model;
mod reproduce;
mod roar_job;

use anyhow::{bail, Result};
use candle_core::{DType, Device};
use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "candle-explain",
    version,
    about = "Attribution methods and faithfulness metrics for Candle models"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Explain one input: attributions as JSON, safetensors and a picture.
    Explain(explain::ExplainArgs),
    /// Score methods with faithfulness metrics over a dataset: JSON and curve plots.
    Evaluate(evaluate::EvaluateArgs),
    /// Explain a whole dataset as a job of shards that any number of tasks share (a Slurm
    /// array, a Kubernetes indexed Job, --processes N); reruns skip finished shards.
    ExplainDataset(dataset_job::DatasetArgs),
    /// explain-dataset with per-example faithfulness metrics (default: deletion, insertion).
    EvaluateDataset(dataset_job::DatasetArgs),
    /// Join a dataset job's shards (checks they are all there and all of the same job).
    Merge(merge::MergeArgs),
    /// ROAR / KAR (Hooker et al.) as one sharded job: the training and test sets'
    /// attributions, then every retraining as its own unit of work.
    Roar(roar_job::RoarArgs),
    /// A language model continues a prompt (or is given the continuation); each generated
    /// token is explained by the tokens before it (AttnLRP, IG, gradients, ablation):
    /// generation.html, result.json, attributions.safetensors.
    Generate(generate::GenerateArgs),
    /// List the methods and models.
    Methods,
    /// Rerun a paper's experiment and write its report (lundstrom so far).
    Reproduce(reproduce::ReproduceArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DeviceArg {
    Cpu,
    Cuda,
    Metal,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DTypeArg {
    F32,
    Bf16,
    F16,
}

/// Device and precision flags shared by the subcommands.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DTypeArg,
}

impl RunArgs {
    pub fn device(&self) -> Result<Device> {
        Ok(match self.device {
            DeviceArg::Cpu => Device::Cpu,
            DeviceArg::Cuda if candle_core::utils::cuda_is_available() => Device::new_cuda(0)?,
            DeviceArg::Metal if candle_core::utils::metal_is_available() => Device::new_metal(0)?,
            d => bail!("--device {d:?}: this binary was built without that backend (rebuild with --features cuda or metal)"),
        })
    }

    pub fn dtype(&self) -> DType {
        match self.dtype {
            DTypeArg::F32 => DType::F32,
            DTypeArg::Bf16 => DType::BF16,
            DTypeArg::F16 => DType::F16,
        }
    }
}

/// Writes a file; the error names it once (the OS's reason follows as its cause).
pub fn write_file(path: &std::path::Path, contents: impl AsRef<[u8]>) -> Result<()> {
    use anyhow::Context;
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}

fn main() {
    candle_explain::alloc::retain_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Explain(a) => explain::run(&a),
        Command::Evaluate(a) => evaluate::run(&a),
        Command::Reproduce(a) => reproduce::run(&a),
        Command::ExplainDataset(a) => dataset_job::run(&a, false),
        Command::EvaluateDataset(a) => dataset_job::run(&a, true),
        Command::Merge(a) => merge::run(&a),
        Command::Roar(a) => roar_job::run(&a),
        Command::Generate(a) => generate::run(&a),
        Command::Methods => {
            println!("methods (images): {}", method::METHODS.join(", "));
            println!(
                "methods (text, at the word embeddings): {}",
                method::TEXT_METHODS.join(", ")
            );
            println!("layer-* and neuron-* methods attribute to (or through) the layer named by --layer (default: the last conv stage; BERT: embeddings, or encoder.layer.N), neuron-* to its unit --neuron; an unknown name lists the model's layers");
            println!(
                "methods (language models, candle-explain generate): {}",
                generate::LLM_METHODS.join(", ")
            );
            println!("built-in models: digits-cnn (MNIST), fashion-resnet (Fashion-MNIST), efficientnet-lite0 (ImageNet), tiny-llama (a language model, for generate); or a BERT / LSTM / GPT-2 / Llama-family folder, or a hub id (the Hugging Face cache, downloaded unless HF_HUB_OFFLINE)");
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
