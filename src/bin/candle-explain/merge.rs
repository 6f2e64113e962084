//! `candle-explain merge DIR`: joins a job folder's shards into one result, after checking
//! that every shard is there, intact and of this job.

use crate::dataset_job::JobRecord;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor};
use candle_explain::jobs::manifest::{write_atomic, ShardManifest, ShardState};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// The job folder (`--out` of explain-dataset).
    pub dir: PathBuf,
}

pub fn run(a: &MergeArgs) -> Result<()> {
    merge(&a.dir)
}

/// [`merge`] unless `dir` already holds the merge of job `hash`.
pub fn merge_if_needed(dir: &Path, hash: &str) -> Result<()> {
    let done = std::fs::read_to_string(dir.join("merged.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["job"] == hash)
        && dir.join("merged.safetensors").exists();
    if done {
        return Ok(());
    }
    merge(dir)
}

/// Writes `dir/merged.safetensors` (every shard's tensors joined along the examples, in
/// dataset order) and `dir/merged.json` (the job, counts, per-method means, timings).
pub fn merge(dir: &Path) -> Result<()> {
    let t0 = std::time::Instant::now();
    let record = JobRecord::read(dir)?;
    let plan = record.plan()?;
    let shards_dir = dir.join("shards");
    let (mut manifests, mut missing, mut problems) = (vec![], vec![], vec![]);
    for k in 0..plan.shards() {
        match ShardManifest::state(&shards_dir, k, &record.hash)? {
            ShardState::Done(m) => manifests.push(*m),
            ShardState::Missing => missing.push(k),
            ShardState::Corrupt(why) => problems.push(format!("shard {k}: {why}")),
            ShardState::Foreign(job) => problems.push(format!(
                "shard {k} belongs to job {job}, not to this folder's job {}",
                record.hash
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "cannot merge {}:\n  {}",
            dir.display(),
            problems.join("\n  ")
        );
    }
    if !missing.is_empty() {
        bail!(
            "cannot merge {}: {} of {} shards are not finished ({}); rerun the job's tasks (finished shards are skipped)",
            dir.display(),
            missing.len(),
            plan.shards(),
            abbreviate(&missing)
        );
    }
    let mut parts: BTreeMap<String, Vec<Tensor>> = BTreeMap::new();
    let mut tokens: Vec<serde_json::Value> = vec![];
    for m in &manifests {
        let path = shards_dir.join(&m.file);
        let tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let count = tensors.get("index").map(|t| t.dim(0)).transpose()?;
        if count != Some(m.count) {
            bail!("{}: {count:?} examples, its manifest says {}", path.display(), m.count);
        }
        for (name, t) in tensors {
            parts.entry(name).or_default().push(t);
        }
        if let Some(t) = m.extra.get("tokens").and_then(|t| t.as_array()) {
            tokens.extend(t.iter().cloned());
        }
    }
    let mut merged = HashMap::new();
    for (name, ts) in &parts {
        if ts.len() != manifests.len() {
            bail!("tensor {name} is in {} of {} shards", ts.len(), manifests.len());
        }
        merged.insert(name.clone(), Tensor::cat(ts, 0)?);
    }
    let out = dir.join("merged.safetensors");
    let tmp = candle_explain::jobs::manifest::temporary(&out);
    candle_core::safetensors::save(&merged, &tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    candle_explain::jobs::manifest::publish(&tmp, &out)?;
    let summary = summarize(&record, &merged)?;
    let mut json = serde_json::json!({
        "job": record.hash,
        "definition": record.definition,
        "source": record.source,
        "examples": record.examples,
        "shards": plan.shards(),
        "methods": summary,
        "shard_seconds_total": manifests.iter().map(|m| m.seconds).sum::<f64>(),
        "tasks": manifests.iter().map(|m| m.task.clone()).collect::<std::collections::BTreeSet<_>>(),
        "merge_seconds": t0.elapsed().as_secs_f64(),
    });
    if !tokens.is_empty() {
        json["tokens"] = serde_json::Value::Array(tokens);
    }
    write_atomic(
        &dir.join("merged.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    println!(
        "merged {} shards ({} examples) in {:.2} s: {}, {}",
        plan.shards(),
        record.examples,
        t0.elapsed().as_secs_f64(),
        out.display(),
        dir.join("merged.json").display()
    );
    Ok(())
}

/// Per method: the mean explained output and, for each metric, the mean AOPC with its
/// standard error over the examples.
fn summarize(
    record: &JobRecord,
    merged: &HashMap<String, Tensor>,
) -> Result<serde_json::Value> {
    let methods: Vec<String> = serde_json::from_value(record.definition["job"]["methods"].clone())?;
    let metrics: Vec<String> = serde_json::from_value(record.definition["job"]["metrics"].clone())?;
    let stats = |t: &Tensor| -> Result<serde_json::Value> {
        let v: Vec<f64> = t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Ok(serde_json::json!({"mean": mean, "standard_error": (var / n).sqrt()}))
    };
    let mut out = serde_json::Map::new();
    for m in &methods {
        let mut row = serde_json::Map::new();
        if let Some(t) = merged.get(&format!("output.{m}")) {
            row.insert("explained_output".into(), stats(t)?);
        }
        for metric in &metrics {
            if let Some(t) = merged.get(&format!("{metric}_aopc.{m}")) {
                row.insert(format!("{metric}_aopc"), stats(t)?);
            }
        }
        out.insert(m.clone(), row.into());
    }
    Ok(out.into())
}

/// `[0, 1, 2, 7]` → "0–2, 7".
fn abbreviate(ks: &[usize]) -> String {
    let mut parts: Vec<String> = vec![];
    let mut i = 0;
    while i < ks.len() {
        let mut j = i;
        while j + 1 < ks.len() && ks[j + 1] == ks[j] + 1 {
            j += 1;
        }
        parts.push(match i == j {
            true => ks[i].to_string(),
            false => format!("{}–{}", ks[i], ks[j]),
        });
        i = j + 1;
    }
    parts.join(", ")
}
