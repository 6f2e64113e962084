//! `candle-explain roar`: ROAR and KAR (Hooker et al. 2019) as one dataset job that a Slurm
//! array runs whole. Phase 1: the attributions of every training and test image, as two
//! sharded explain-dataset jobs (`attributions/train`, `attributions/test`). Phase 2: each
//! retraining (mode × method × fraction × repeat) is a unit of its own, run by task
//! `unit mod N`. A task reaching phase 2 first finishes any phase-1 shard still missing
//! itself (so a cancelled task never blocks the others), and a rerun skips finished units.
//! When the last unit is done, `roar.json` and the ROAR / KAR plots are written.

use crate::dataset_job::{execute, task_from_env, Job};
use crate::method::MethodArgs;
use crate::model::{load, Loaded};
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_explain::jobs::manifest::{job_hash, write_atomic};
use candle_explain::jobs::task::Task;
use candle_explain::metrics::Roar;
use candle_explain::models::small_resnet::{SmallResNet, SmallResNetConfig};
use candle_explain::models::train::TrainConfig;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct RoarArgs {
    /// The model whose attributions are ranked, and whose architecture is retrained
    /// (fashion-resnet: Fashion-MNIST, 60,000 training and 10,000 test images).
    #[arg(long, default_value = "fashion-resnet")]
    pub model: String,
    /// Comma-separated methods ("random" is the control).
    #[arg(long, value_delimiter = ',', default_value = "saliency,integrated-gradients,random")]
    pub methods: Vec<String>,
    /// Fractions of each image removed (ROAR) or kept (KAR).
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.3,0.5,0.7,0.9")]
    pub fractions: Vec<f64>,
    /// Retrainings per point (seeds), for error bars.
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// roar, kar or both.
    #[arg(long, value_delimiter = ',', default_value = "roar,kar")]
    pub modes: Vec<String>,
    #[arg(long, default_value_t = 5)]
    pub epochs: usize,
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Only the first N training images (default: all).
    #[arg(long)]
    pub train_limit: Option<usize>,
    /// Only the first N test images (default: all).
    #[arg(long)]
    pub test_limit: Option<usize>,
    /// Images per attribution shard.
    #[arg(long, default_value_t = 512)]
    pub shard_size: usize,
    #[command(flatten)]
    pub params: MethodArgs,
    #[command(flatten)]
    pub run: RunArgs,
    #[arg(long)]
    pub out: PathBuf,
    /// This process is task i of N; default: from the engine's environment, else the only one.
    #[arg(long)]
    pub shard: Option<String>,
}

/// One retraining.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
struct Unit {
    mode: String,
    method: String,
    fraction: f64,
    repeat: usize,
}

impl Unit {
    fn file(&self) -> String {
        format!("{}-{}-{}-{}.json", self.mode, self.method, self.fraction, self.repeat)
    }
}

pub fn run(a: &RoarArgs) -> Result<()> {
    if a.model != "fashion-resnet" {
        bail!("roar retrains the model's architecture on its training set: only fashion-resnet (Fashion-MNIST) has both for now");
    }
    for m in &a.modes {
        if m != "roar" && m != "kar" {
            bail!("--modes {m}: roar or kar");
        }
    }
    if let Some(t) = a.fractions.iter().find(|t| !(**t > 0.0 && **t < 1.0)) {
        bail!("--fractions {t}: each must be in (0, 1)");
    }
    if a.repeats == 0 || a.epochs == 0 || a.batch_size == 0 || a.methods.is_empty() {
        bail!("--repeats, --epochs, --batch-size and --methods must be at least 1");
    }
    let task = match &a.shard {
        Some(s) => Task::parse(s)?,
        None => task_from_env()?,
    };
    let fashion = crate::model::assets("fashion-mnist")?;
    let params: std::collections::BTreeMap<String, serde_json::Value> =
        serde_json::from_value(a.params.to_json())?;
    let attribution_job = |split: &str, limit: Option<usize>| Job {
        model: a.model.clone(),
        data: Some(fashion.join(format!("{split}-images-idx3-ubyte.gz")).display().to_string()),
        labels: None,
        format: Some("idx".into()),
        methods: a.methods.clone(),
        metrics: vec![],
        // The ranking explains the true class, as for training images there is no other.
        target: "label".into(),
        shard_size: a.shard_size,
        limit,
        curve_steps: 16,
        dtype: "f32".into(),
        params: params.clone(),
    };
    // Phase 1: this task's attribution shards, then any still missing.
    let mut hashes = vec![];
    for (split, limit) in [("train", a.train_limit), ("t10k", a.test_limit)] {
        let dir = a.out.join("attributions").join(split);
        let record = execute(&attribution_job(split, limit), &dir, &task, &a.run, true)?;
        crate::merge::merge_if_needed(&dir, &record.hash)?;
        hashes.push(record.hash);
    }
    let train = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        learning_rate: a.learning_rate,
        ..Default::default()
    };
    let definition = serde_json::json!({
        "attributions": hashes,
        "modes": a.modes, "methods": a.methods, "fractions": a.fractions, "repeats": a.repeats,
        "epochs": a.epochs, "batch_size": a.batch_size, "learning_rate": a.learning_rate,
    });
    let hash = job_hash(&definition);
    let units_dir = a.out.join("units");
    std::fs::create_dir_all(&units_dir)
        .with_context(|| format!("cannot create {}", units_dir.display()))?;
    let units: Vec<Unit> = a
        .modes
        .iter()
        .flat_map(|mode| {
            a.methods.iter().flat_map(move |method| {
                a.fractions.iter().flat_map(move |&fraction| {
                    (0..a.repeats).map(move |repeat| Unit {
                        mode: mode.clone(),
                        method: method.clone(),
                        fraction,
                        repeat,
                    })
                })
            })
        })
        .collect();
    let mine: Vec<&Unit> = units
        .iter()
        .skip(task.index)
        .step_by(task.count)
        .filter(|u| unit_result(&units_dir, u, &hash).is_none())
        .collect();
    println!(
        "roar {}: {} retrainings; task {}/{} runs {} of them",
        &hash[..12],
        units.len(),
        task.index,
        task.count,
        mine.len()
    );
    if !mine.is_empty() {
        let (device, dtype) = (a.run.device()?, DType::F32);
        let data = Splits::load(a, &fashion, &device)?;
        let build = |vb: candle_nn::VarBuilder| -> candle_explain::core::Result<Box<dyn candle_explain::core::Explainable>> {
            Ok(Box::new(SmallResNet::load(vb, SmallResNetConfig::fashion_mnist())?))
        };
        for u in mine {
            let t0 = std::time::Instant::now();
            let (attr_train, attr_test) = data.attributions(&a.out, &u.method, dtype)?;
            let roar = Roar {
                fractions: vec![u.fraction],
                repeats: 1,
                keep: u.mode == "kar",
                train: train.clone(),
            };
            let accuracy = roar.retrain_once(
                &build,
                (&data.x_train, &data.y_train),
                &attr_train,
                (&data.x_test, &data.y_test),
                &attr_test,
                u.fraction,
                u.repeat,
            )?;
            let seconds = t0.elapsed().as_secs_f64();
            let json = serde_json::json!({"job": hash, "unit": u, "accuracy": accuracy, "seconds": seconds, "task": format!("{}/{} ({})", task.index, task.count, task.source)});
            write_atomic(&units_dir.join(u.file()), serde_json::to_string_pretty(&json)?.as_bytes())?;
            eprintln!(
                "task {}/{}: {} {} at {} (repeat {}): accuracy {accuracy:.4} ({seconds:.1} s)",
                task.index, task.count, u.mode, u.method, u.fraction, u.repeat
            );
        }
    }
    report(&a.out, &units, &units_dir, &hash, &definition)
}

/// A finished unit's accuracy, if its file is there and of this job.
fn unit_result(dir: &Path, u: &Unit, hash: &str) -> Option<f64> {
    let text = std::fs::read_to_string(dir.join(u.file())).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    (v["job"] == hash).then(|| v["accuracy"].as_f64()).flatten()
}

/// The normalised training and test images and their labels.
struct Splits {
    x_train: Tensor,
    y_train: Tensor,
    x_test: Tensor,
    y_test: Tensor,
}

impl Splits {
    fn load(a: &RoarArgs, fashion: &Path, device: &Device) -> Result<Self> {
        let Loaded::Image(m) = load(&a.model, DType::F32, device)? else {
            bail!("{} is not an image model", a.model)
        };
        let split = |name: &str, limit: Option<usize>| -> Result<(Tensor, Tensor)> {
            let d = candle_explain::models::data::load_idx(
                fashion.join(format!("{name}-images-idx3-ubyte.gz")),
                fashion.join(format!("{name}-labels-idx1-ubyte.gz")),
                device,
            )?;
            let n = limit.unwrap_or(usize::MAX).min(d.labels.len());
            let y: Vec<u32> = d.labels[..n].iter().map(|&l| l as u32).collect();
            Ok(((m.normalize)(&d.images.narrow(0, 0, n)?)?, Tensor::new(y, device)?))
        };
        let (x_train, y_train) = split("train", a.train_limit)?;
        let (x_test, y_test) = split("t10k", a.test_limit)?;
        Ok(Self { x_train, y_train, x_test, y_test })
    }

    /// The merged phase-1 attributions of `method` for both splits.
    fn attributions(&self, out: &Path, method: &str, dtype: DType) -> Result<(Tensor, Tensor)> {
        let read = |split: &str| -> Result<Tensor> {
            let path = out.join("attributions").join(split).join("merged.safetensors");
            let mut t = candle_core::safetensors::load(&path, self.x_train.device())
                .with_context(|| format!("cannot read {}", path.display()))?;
            Ok(t.remove(&format!("attributions.{method}"))
                .with_context(|| format!("{}: no attributions of {method}", path.display()))?
                .to_dtype(dtype)?)
        };
        Ok((read("train")?, read("t10k")?))
    }
}

/// Writes `roar.json` and the plots once every unit is done; otherwise says how many remain.
fn report(
    out: &Path,
    units: &[Unit],
    dir: &Path,
    hash: &str,
    definition: &serde_json::Value,
) -> Result<()> {
    let results: Vec<Option<f64>> = units.iter().map(|u| unit_result(dir, u, hash)).collect();
    let missing = results.iter().filter(|r| r.is_none()).count();
    if missing > 0 {
        println!("{missing} of {} retrainings are not finished yet (other tasks, or a rerun); the report comes with the last", units.len());
        return Ok(());
    }
    let mut table = serde_json::Map::new();
    for mode in units.iter().map(|u| u.mode.clone()).collect::<std::collections::BTreeSet<_>>() {
        let mut series = vec![];
        let mut rows = serde_json::Map::new();
        for method in units.iter().filter(|u| u.mode == mode).map(|u| u.method.clone()).collect::<std::collections::BTreeSet<_>>() {
            let mut points = vec![];
            let mut fractions: Vec<f64> = units.iter().filter(|u| u.mode == mode && u.method == method).map(|u| u.fraction).collect();
            fractions.dedup();
            let (mut xs, mut means, mut sds) = (vec![], vec![], vec![]);
            for t in fractions {
                let accs: Vec<f64> = units
                    .iter()
                    .zip(&results)
                    .filter(|(u, _)| u.mode == mode && u.method == method && u.fraction == t)
                    .filter_map(|(_, r)| *r)
                    .collect();
                let n = accs.len() as f64;
                let mean = accs.iter().sum::<f64>() / n;
                let sd = (accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0)).sqrt();
                points.push(serde_json::json!({"fraction": t, "accuracy": accs, "mean": mean, "standard_deviation": sd}));
                xs.push(t);
                means.push(mean);
                sds.push(sd);
            }
            series.push(candle_explain::viz::Series::new(method.clone(), xs, means).with_error(sds));
            rows.insert(method, points.into());
        }
        let what = if mode == "roar" { "removed" } else { "kept" };
        candle_explain::viz::save_line_plot(
            out,
            &mode,
            &format!("{}: test accuracy after retraining", mode.to_uppercase()),
            &format!("fraction of each image {what} (ranked by the method)"),
            "test accuracy (mean ± s.d. over repeats)",
            &series,
        )
        .map_err(anyhow::Error::msg)?;
        table.insert(mode, rows.into());
    }
    let json = serde_json::json!({"job": hash, "definition": definition, "results": table});
    write_atomic(&out.join("roar.json"), serde_json::to_string_pretty(&json)?.as_bytes())?;
    println!("all {} retrainings done: wrote {}/{{roar.json, and roar / kar as SVG and PNG}}", units.len(), out.display());
    Ok(())
}
