//! `candle-explain explain-dataset` and `evaluate-dataset`: one job over a whole dataset, cut
//! into shards that any number of tasks (a Slurm array, a Kubernetes indexed Job, local
//! processes) share. Each finished shard is written atomically with its manifest; a rerun
//! skips finished shards; `candle-explain merge` joins them (see `docs/scale-out.md`).

use crate::dataset_input::{self, Dataset, Examples};
use crate::explain::{explain_texts, target};
use crate::method::{build, MethodArgs, LAYER_METHODS, METHODS, TEXT_METHODS};
use crate::model::{load, ImageModel, Loaded, TextModel};
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use candle_explain::jobs::manifest::{job_hash, shard_stem, temporary, ShardManifest, ShardState};
use candle_explain::jobs::{plan::Plan, task::Task};
use candle_explain::metrics::PixelFlipping;
use candle_explain::prelude::*;
use clap::Parser;
use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct DatasetArgs {
    /// A job file (TOML or JSON) with the fields of the flags below (model, data, labels,
    /// format, methods, metrics, target, shard_size, limit, curve_steps, dtype, and a
    /// [params] table of method parameters). Without it, the flags are the job.
    #[arg(long, conflicts_with_all = ["model", "data", "methods", "metrics", "target", "shard_size", "limit"])]
    pub job: Option<PathBuf>,
    /// digits-cnn, fashion-resnet, efficientnet-lite0, a BERT or LSTM folder, or a hub id.
    #[arg(long)]
    pub model: Option<String>,
    /// An IDX images file, a CSV (MNIST layout), a folder of images, a text file (one example
    /// per line) or JSON lines ({"image": path} or {"text": …}, optional "label"); default:
    /// the model's built-in dataset.
    #[arg(long)]
    pub data: Option<String>,
    /// The labels of an IDX images file (default: its `labels-idx1` sibling).
    #[arg(long)]
    pub labels: Option<String>,
    /// builtin, idx, csv, images, lines or jsonl (default: from the path).
    #[arg(long)]
    pub format: Option<String>,
    /// Comma-separated methods.
    #[arg(long, value_delimiter = ',')]
    pub methods: Vec<String>,
    /// Comma-separated per-example metrics: deletion, insertion (image models).
    #[arg(long, value_delimiter = ',')]
    pub metrics: Vec<String>,
    /// "predicted", "label" (the dataset's) or a class index.
    #[arg(long)]
    pub target: Option<String>,
    /// Examples per shard (default 256): part of the job, fixed across reruns.
    #[arg(long)]
    pub shard_size: Option<usize>,
    /// Only the first N examples.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub params: MethodArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// The job folder: job.json, shards/, and after the merge merged.safetensors and
    /// merged.json.
    #[arg(long)]
    pub out: PathBuf,
    /// This process is task i of N ("i/N"); default: from SLURM_ARRAY_TASK_ID,
    /// JOB_COMPLETION_INDEX or LOCAL_RANK, else the only task.
    #[arg(long, conflicts_with = "processes")]
    pub shard: Option<String>,
    /// Run the job as N local processes (each `--shard i/N`), then merge.
    #[arg(long)]
    pub processes: Option<usize>,
}

/// A job's definition: everything that changes its results (its hash names the job).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub model: String,
    #[serde(default)]
    pub data: Option<String>,
    #[serde(default)]
    pub labels: Option<String>,
    #[serde(default)]
    pub format: Option<String>,
    pub methods: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default = "predicted")]
    pub target: String,
    #[serde(default = "default_shard_size")]
    pub shard_size: usize,
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default = "default_curve_steps")]
    pub curve_steps: usize,
    #[serde(default = "f32_name")]
    pub dtype: String,
    /// Method parameters by their flag names (`steps = 50`, `memory_mb = 512`).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

fn predicted() -> String {
    "predicted".into()
}
fn default_shard_size() -> usize {
    256
}
fn default_curve_steps() -> usize {
    16
}
fn f32_name() -> String {
    "f32".into()
}

pub const METRICS: &[&str] = &["deletion", "insertion"];

/// The method flags alone, to read a job file's `[params]` with the CLI's own parser (same
/// names, defaults and checks).
#[derive(Parser)]
struct ParamsOnly {
    #[command(flatten)]
    params: MethodArgs,
}

fn method_args(params: &BTreeMap<String, serde_json::Value>) -> Result<MethodArgs> {
    let mut argv = vec!["params".to_string()];
    for (k, v) in params.iter().filter(|(_, v)| !v.is_null()) {
        argv.push(format!("--{}", k.replace('_', "-")));
        argv.push(match v {
            serde_json::Value::String(s) => s.clone(),
            v => v.to_string(),
        });
    }
    Ok(ParamsOnly::try_parse_from(&argv)
        .map_err(|e| anyhow::anyhow!("the job's params: {}", e.render().to_string().trim()))?
        .params)
}

impl Job {
    fn from_args(a: &DatasetArgs, evaluate: bool) -> Result<Self> {
        let job = match &a.job {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the job file {}", path.display()))?;
                let defaults = ParamsOnly::parse_from(["params"]).params.to_json();
                if a.params.to_json() != defaults {
                    bail!("with --job, give method parameters in the job file's [params] table, not as flags");
                }
                let is_json = path.extension().is_some_and(|e| e == "json");
                let job: Job = if is_json {
                    serde_json::from_str(&text).map_err(anyhow::Error::msg)
                } else {
                    toml::from_str(&text).map_err(anyhow::Error::msg)
                }
                .with_context(|| format!("job file {}", path.display()))?;
                job
            }
            None => Job {
                model: a.model.clone().unwrap_or_else(|| "digits-cnn".into()),
                data: a.data.clone(),
                labels: a.labels.clone(),
                format: a.format.clone(),
                methods: match a.methods.is_empty() {
                    true => vec!["integrated-gradients".into()],
                    false => a.methods.clone(),
                },
                metrics: a.metrics.clone(),
                target: a.target.clone().unwrap_or_else(predicted),
                shard_size: a.shard_size.unwrap_or_else(default_shard_size),
                limit: a.limit,
                curve_steps: default_curve_steps(),
                dtype: format!("{:?}", a.run.dtype).to_lowercase(),
                params: serde_json::from_value(a.params.to_json())?,
            },
        };
        let mut job = job;
        if evaluate && job.metrics.is_empty() {
            job.metrics = METRICS.iter().map(|s| s.to_string()).collect();
        }
        // Parameters as the CLI reads them (defaults filled in): the same job written two
        // ways hashes the same.
        job.params = serde_json::from_value(method_args(&job.params)?.to_json())?;
        job.params.retain(|_, v| !v.is_null());
        Ok(job)
    }

    fn dtype(&self) -> Result<DType> {
        Ok(match self.dtype.as_str() {
            "f32" => DType::F32,
            "bf16" => DType::BF16,
            "f16" => DType::F16,
            d => bail!("dtype {d:?}: f32, bf16 or f16"),
        })
    }

    fn check(&self, text: bool) -> Result<()> {
        if self.methods.is_empty() {
            bail!("the job names no methods");
        }
        let known = if text { TEXT_METHODS } else { METHODS };
        for m in &self.methods {
            if !crate::method::known(m, known) {
                bail!("method {m:?}: for this model one of {} (or sg: / sg2: / vargrad: before one)", known.join(", "));
            }
            if !text && LAYER_METHODS.contains(&m.as_str()) {
                bail!("method {m}: dataset jobs store maps over the input; layer methods are not supported yet");
            }
        }
        for m in &self.metrics {
            if !METRICS.contains(&m.as_str()) {
                bail!("metric {m:?}: one of {}", METRICS.join(", "));
            }
            if text {
                bail!("metric {m}: the per-example metrics perturb pixels; text jobs take none");
            }
        }
        if self.curve_steps == 0 {
            bail!("curve_steps must be at least 1");
        }
        Ok(())
    }
}

/// `job.json` of a job folder: the definition, its hash, the dataset's fingerprint and the
/// plan. Every task writes the same file; a different job's file is never overwritten.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub hash: String,
    pub definition: serde_json::Value,
    pub examples: usize,
    pub shard_size: usize,
    pub shards: usize,
    pub source: String,
    pub classes: Vec<String>,
}

impl JobRecord {
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("job.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("{}: not a job folder (no job.json)", dir.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a job record", path.display()))
    }

    pub fn plan(&self) -> Result<Plan> {
        Ok(Plan::new(self.examples, self.shard_size)?)
    }
}

pub fn run(a: &DatasetArgs, evaluate: bool) -> Result<()> {
    if let Some(n) = a.processes {
        return run_processes(a, n);
    }
    let job = Job::from_args(a, evaluate)?;
    let task = match &a.shard {
        Some(s) => Task::parse(s)?,
        None => task_from_env()?,
    };
    execute(&job, &a.out, &task, &a.run, false)?;
    // The only task merges at once; array tasks leave it to `candle-explain merge`.
    if task.count == 1 {
        crate::merge::merge(&a.out)?;
    }
    Ok(())
}

/// The task the engine's environment names, else the only one.
pub fn task_from_env() -> Result<Task> {
    Ok(Task::from_env(|k| std::env::var(k).ok())?.unwrap_or(Task::new(0, 1)?))
}

/// Runs `task`'s shards of `job` in the job folder `out` (those not finished yet). With
/// `steal`, it then also runs every shard still missing, last first (where their owners
/// arrive last), rechecking each just before: a task that needs the whole result (ROAR's
/// retrainings) never waits on a task that was cancelled. Returns the job's record.
pub fn execute(job: &Job, out: &Path, task: &Task, run: &RunArgs, steal: bool) -> Result<JobRecord> {
    let (device, dtype) = (run.device()?, job.dtype()?);
    let loaded = load(&job.model, dtype, &device)?;
    job.check(matches!(loaded, Loaded::Text(_)))?;
    let mut data = dataset_input::read(
        &loaded,
        job.data.as_deref(),
        job.labels.as_deref(),
        job.format.as_deref(),
        &device,
    )?;
    if let Some(n) = job.limit {
        limit(&mut data, n)?;
    }
    if job.target == "label" && data.labels.is_none() {
        bail!("target = \"label\", but {} has no labels", data.source);
    }
    let examples = data.len()?;
    let plan = Plan::new(examples, job.shard_size)?;
    let definition = serde_json::json!({
        "job": job,
        "data_sha256": data.fingerprint()?,
        // Results are bitwise reproducible on one kind of device, not across kinds.
        "device": format!("{:?}", run.device).to_lowercase(),
    });
    let record = JobRecord {
        hash: job_hash(&definition),
        definition,
        examples,
        shard_size: job.shard_size,
        shards: plan.shards(),
        source: data.source.clone(),
        classes: match &loaded {
            Loaded::Image(m) => m.classes.clone(),
            Loaded::Text(m) => m.classes.clone(),
        },
    };
    let shards_dir = out.join("shards");
    std::fs::create_dir_all(&shards_dir)
        .with_context(|| format!("cannot create {}", shards_dir.display()))?;
    claim_folder(out, &record)?;
    let owned = plan.owned(task);
    let todo = unfinished(&shards_dir, &owned, &record.hash)?;
    let todo_examples: usize = todo.iter().map(|&k| plan.range(k).len()).sum();
    println!(
        "job {} ({}): {} examples in {} shards of {}; task {}/{} ({}) owns {} shards, {} finished, {} to do ({todo_examples} examples)",
        &record.hash[..12],
        job.model,
        examples,
        plan.shards(),
        job.shard_size,
        task.index,
        task.count,
        task.source,
        owned.len(),
        owned.len() - todo.len(),
        todo.len()
    );
    let work = Work::new(job, &loaded, &data, dtype, &device)?;
    let t0 = std::time::Instant::now();
    let done = run_shards(&work, &record, &plan, &shards_dir, &todo, task)?;
    if done > 0 {
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "task {}/{}: {done} shards, {todo_examples} examples in {secs:.1} s ({:.1} examples/s)",
            task.index,
            task.count,
            todo_examples as f64 / secs
        );
    }
    if steal {
        let all: Vec<usize> = (0..plan.shards()).rev().collect();
        let missing = unfinished(&shards_dir, &all, &record.hash)?;
        if !missing.is_empty() {
            println!(
                "task {}/{}: {} shards of other tasks are not finished; running them here",
                task.index,
                task.count,
                missing.len()
            );
            run_shards(&work, &record, &plan, &shards_dir, &missing, task)?;
        }
    }
    Ok(record)
}

/// The shards of `shards` that are not finished (in the given order); another job's shard
/// is an error.
fn unfinished(shards_dir: &Path, shards: &[usize], hash: &str) -> Result<Vec<usize>> {
    let mut todo = vec![];
    for &k in shards {
        match ShardManifest::state(shards_dir, k, hash)? {
            ShardState::Done(_) => {}
            ShardState::Missing => todo.push(k),
            ShardState::Corrupt(why) => {
                eprintln!("shard {k}: {why}; redoing it");
                todo.push(k)
            }
            ShardState::Foreign(other) => bail!(
                "{}: shard {k} belongs to job {other}, not to this job ({hash}); use another --out",
                shards_dir.display(),
            ),
        }
    }
    Ok(todo)
}

/// Computes and writes shards `todo`, skipping any another task finished meanwhile; returns
/// how many it wrote.
fn run_shards(
    work: &Work,
    record: &JobRecord,
    plan: &Plan,
    shards_dir: &Path,
    todo: &[usize],
    task: &Task,
) -> Result<usize> {
    let examples: usize = todo.iter().map(|&k| plan.range(k).len()).sum();
    let progress = Progress::new(examples, task);
    let mut written = 0;
    for (done, &k) in todo.iter().enumerate() {
        if matches!(ShardManifest::state(shards_dir, k, &record.hash)?, ShardState::Done(_)) {
            continue;
        }
        let range = plan.range(k);
        let s0 = std::time::Instant::now();
        let (tensors, extra) = work.shard(range.clone())?;
        // Results first, under a temporary name, then the manifest: a task killed in
        // between leaves no manifest, so the shard counts as not done.
        let path = shards_dir.join(format!("{}.safetensors", shard_stem(k)));
        let tmp = temporary(&path);
        candle_core::safetensors::save(&tensors, &tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        candle_explain::jobs::manifest::publish(&tmp, &path)?;
        let seconds = s0.elapsed().as_secs_f64();
        ShardManifest::write(
            shards_dir,
            &record.hash,
            (k, plan.shards()),
            (range.start, range.len()),
            seconds,
            &format!("{}/{} ({})", task.index, task.count, task.source),
            extra,
        )?;
        written += 1;
        progress.shard(k, range.len(), seconds, done + 1, todo.len());
    }
    progress.finish();
    Ok(written)
}

fn limit(data: &mut Dataset, n: usize) -> Result<()> {
    if n == 0 {
        bail!("limit must be at least 1");
    }
    let n = n.min(data.len()?);
    match &mut data.examples {
        Examples::Images(t) => *t = t.narrow(0, 0, n)?,
        Examples::Texts(l) => l.truncate(n),
    }
    if let Some(l) = &mut data.labels {
        l.truncate(n);
    }
    Ok(())
}

/// Writes `job.json`, or checks that the folder's is this job's.
fn claim_folder(dir: &Path, record: &JobRecord) -> Result<()> {
    let path = dir.join("job.json");
    if path.exists() {
        let theirs = JobRecord::read(dir)?;
        if theirs.hash != record.hash {
            bail!(
                "{} holds job {} ({}), not this one ({}): use another --out, or delete the folder to start over",
                dir.display(),
                theirs.hash,
                theirs.definition["job"]["model"],
                record.hash
            );
        }
        return Ok(());
    }
    candle_explain::jobs::manifest::write_atomic(
        &path,
        serde_json::to_string_pretty(record)?.as_bytes(),
    )?;
    Ok(())
}

/// What one shard computes: the model, its built methods and the examples.
struct Work<'a> {
    job: &'a Job,
    loaded: &'a Loaded,
    data: &'a Dataset,
    params: MethodArgs,
    dtype: DType,
    device: Device,
}

impl<'a> Work<'a> {
    fn new(
        job: &'a Job,
        loaded: &'a Loaded,
        data: &'a Dataset,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Ok(Self {
            job,
            loaded,
            data,
            params: method_args(&job.params)?,
            dtype,
            device: device.clone(),
        })
    }

    /// The target of example `i` (dataset index) given its logits `(1, classes)`.
    fn target(&self, i: usize, logits: &Tensor, classes: &[String]) -> Result<usize> {
        match self.job.target.as_str() {
            "label" => Ok(self.data.labels.as_ref().context("no labels")?[i]),
            spec => target(spec, logits, classes),
        }
    }

    fn shard(&self, range: std::ops::Range<usize>) -> Result<(HashMap<String, Tensor>, serde_json::Value)> {
        match (self.loaded, &self.data.examples) {
            (Loaded::Image(m), Examples::Images(px)) => {
                Ok((self.image_shard(m, &px.narrow(0, range.start, range.len())?, range)?, serde_json::Value::Null))
            }
            (Loaded::Text(m), Examples::Texts(lines)) => self.text_shard(m, &lines[range.clone()], range),
            _ => bail!("the dataset's examples do not fit the model"),
        }
    }

    fn image_shard(
        &self,
        m: &ImageModel,
        pixels: &Tensor,
        range: std::ops::Range<usize>,
    ) -> Result<HashMap<String, Tensor>> {
        let dev = &self.device;
        let x = (m.normalize)(pixels)?.to_dtype(self.dtype)?;
        let logits = m.model.forward(&x)?;
        let targets: Vec<usize> = range
            .clone()
            .enumerate()
            .map(|(r, i)| self.target(i, &logits.narrow(0, r, 1)?, &m.classes))
            .collect::<Result<_>>()?;
        let target = Target::PerExample(targets.clone());
        let mut out = common_tensors(&range, &targets, self.data, dev)?;
        out.insert(
            "prediction".into(),
            logits.argmax(D::Minus1)?.to_dtype(DType::U32)?,
        );
        let range_px = m.input_range(dev)?;
        for name in &self.job.methods {
            let method = build(name, &self.params, &x.dims()[1..], m.black, range_px, &m.cam_layer)
                .with_context(|| format!("method {name}"))?;
            let attr = method.attribute(m.model.as_ref(), &x, &target)?;
            let maps = attr.attributions.to_dtype(self.dtype)?;
            for metric in &self.job.metrics {
                let pf = match metric.as_str() {
                    "deletion" => PixelFlipping::deletion(self.job.curve_steps),
                    _ => PixelFlipping::insertion(self.job.curve_steps),
                };
                let c = PixelFlipping {
                    baseline: Baseline::Constant(m.black),
                    ..pf
                }
                .evaluate(m.model.as_ref(), &x, &maps, &target)?;
                let n = c.scores.len();
                let curve: Vec<f32> = c.scores.iter().flatten().map(|&v| v as f32).collect();
                let steps = curve.len() / n.max(1);
                out.insert(
                    format!("{metric}_curve.{name}"),
                    Tensor::from_vec(curve, (n, steps), dev)?,
                );
                let aopc: Vec<f32> = c.aopc.iter().map(|&v| v as f32).collect();
                out.insert(format!("{metric}_aopc.{name}"), Tensor::new(aopc, dev)?);
            }
            out.insert(
                format!("attributions.{name}"),
                attr.attributions.to_dtype(DType::F32)?,
            );
            out.insert(format!("output.{name}"), attr.output.to_dtype(DType::F32)?);
        }
        Ok(out)
    }

    fn text_shard(
        &self,
        m: &TextModel,
        lines: &[String],
        range: std::ops::Range<usize>,
    ) -> Result<(HashMap<String, Tensor>, serde_json::Value)> {
        let dev = &self.device;
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let mut out = HashMap::new();
        let mut targets = None;
        let mut tokens_json = serde_json::Value::Null;
        for name in &self.job.methods {
            let choose = |r: usize, logits: &Tensor| self.target(range.start + r, logits, &m.classes);
            let (tokens, res) = explain_texts(
                m,
                &lines,
                name,
                &self.params,
                8,
                dev,
                self.dtype,
                &choose,
            )?;
            // Ragged: every example's token scores one after another, with the lengths.
            let flat: Vec<f32> = res.iter().flat_map(|r| r.scores.iter().map(|&s| s as f32)).collect();
            out.insert(format!("token_scores.{name}"), Tensor::new(flat, dev)?);
            let outs: Vec<f32> = res.iter().map(|r| r.output as f32).collect();
            out.insert(format!("output.{name}"), Tensor::new(outs, dev)?);
            if targets.is_none() {
                let lengths: Vec<u32> = tokens.iter().map(|t| t.len() as u32).collect();
                out.insert("length".into(), Tensor::new(lengths, dev)?);
                tokens_json = serde_json::json!({ "tokens": tokens });
                targets = Some(res.iter().map(|r| r.class).collect::<Vec<_>>());
            }
        }
        let targets = targets.unwrap_or_default();
        out.extend(common_tensors(&range, &targets, self.data, dev)?);
        Ok((out, tokens_json))
    }
}

/// Dataset indices, targets and (when known) labels of a shard's examples.
fn common_tensors(
    range: &std::ops::Range<usize>,
    targets: &[usize],
    data: &Dataset,
    dev: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    let idx: Vec<u32> = range.clone().map(|i| i as u32).collect();
    out.insert("index".into(), Tensor::new(idx, dev)?);
    let t: Vec<u32> = targets.iter().map(|&c| c as u32).collect();
    out.insert("target".into(), Tensor::new(t, dev)?);
    if let Some(l) = &data.labels {
        let l: Vec<u32> = l[range.clone()].iter().map(|&c| c as u32).collect();
        out.insert("label".into(), Tensor::new(l, dev)?);
    }
    Ok(out)
}

/// A bar on a terminal; plain lines in logs (Slurm output files, `kubectl logs`).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    task: String,
}

impl Progress {
    fn new(examples: usize, task: &Task) -> Self {
        let plain = !std::io::stderr().is_terminal() || std::env::var_os("CANDLE_EXPLAIN_PLAIN_PROGRESS").is_some();
        let bar = (!plain && examples > 0).then(|| {
            let b = indicatif::ProgressBar::new(examples as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{msg} [{bar:30}] {pos}/{len} examples ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(format!("task {}/{}", task.index, task.count));
            b
        });
        Self {
            bar,
            task: format!("{}/{}", task.index, task.count),
        }
    }

    fn shard(&self, k: usize, n: usize, secs: f64, done: usize, todo: usize) {
        match &self.bar {
            Some(b) => b.inc(n as u64),
            None => eprintln!(
                "task {}: shard {k} done ({n} examples, {secs:.2} s, {:.1}/s); {done}/{todo}",
                self.task,
                n as f64 / secs
            ),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// `--processes N`: this command N times with `--shard i/N`, at once, then the merge.
fn run_processes(a: &DatasetArgs, n: usize) -> Result<()> {
    if n == 0 {
        bail!("--processes must be at least 1");
    }
    let exe = std::env::current_exe().context("cannot find this program to start its tasks")?;
    let mut args: Vec<String> = vec![];
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--processes" {
            it.next();
        } else if !arg.starts_with("--processes=") {
            args.push(arg);
        }
    }
    // N processes share the cores: each gets its part of Candle's CPU threads (unless the
    // user set RAYON_NUM_THREADS), else they oversubscribe the machine and all slow down.
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    let threads = std::env::var("RAYON_NUM_THREADS")
        .unwrap_or_else(|_| (cores / n).max(1).to_string());
    let t0 = std::time::Instant::now();
    let children = (0..n)
        .map(|i| {
            std::process::Command::new(&exe)
                .args(&args)
                .env("RAYON_NUM_THREADS", &threads)
                .arg("--shard")
                .arg(format!("{i}/{n}"))
                .env("CANDLE_EXPLAIN_PLAIN_PROGRESS", "1")
                .spawn()
                .with_context(|| format!("cannot start task {i}/{n}"))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut failed = vec![];
    for (i, mut c) in children.into_iter().enumerate() {
        if !c.wait()?.success() {
            failed.push(i);
        }
    }
    if !failed.is_empty() {
        bail!("tasks {failed:?} of {n} failed (see their messages above); rerun to finish their shards");
    }
    println!("{n} processes finished in {:.1} s", t0.elapsed().as_secs_f64());
    // With one process, that task has merged already.
    crate::merge::merge_if_needed(&a.out, &JobRecord::read(&a.out)?.hash)
}

