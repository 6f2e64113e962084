//! `candle-explain explain`: one input, one method.

use crate::method::{build, MethodArgs, TEXT_METHODS};
use crate::model::{load, Loaded};
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use candle_explain::prelude::*;
use candle_explain::viz::{Cell, Figure, Row, Sign};
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// digits-cnn, fashion-resnet, efficientnet-lite0, a BERT or LSTM folder, or a hub id.
    #[arg(long, default_value = "digits-cnn")]
    pub model: String,
    /// An image file (PNG or JPEG), resized to the model's input.
    #[arg(long, conflicts_with_all = ["index", "text"])]
    pub image: Option<PathBuf>,
    /// Row of the model's built-in dataset (digits-cnn: the MNIST subset, fashion-resnet: the
    /// Fashion-MNIST test set).
    #[arg(long, conflicts_with = "text")]
    pub index: Option<usize>,
    /// The text to explain (text models).
    #[arg(long)]
    pub text: Option<String>,
    /// See `candle-explain methods`.
    #[arg(long, default_value = "integrated-gradients")]
    pub method: String,
    /// A class index, or "predicted".
    #[arg(long, default_value = "predicted")]
    pub target: String,
    #[command(flatten)]
    pub params: MethodArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Output folder.
    #[arg(long, default_value = "out/cli")]
    pub out: PathBuf,
}

fn target(spec: &str, logits: &Tensor, classes: &[String]) -> Result<usize> {
    let n = classes.len();
    if spec == "predicted" {
        return Ok(logits.argmax(D::Minus1)?.flatten_all()?.to_vec1::<u32>()?[0] as usize);
    }
    let c: usize = spec.parse().with_context(|| {
        format!("--target must be a class index or \"predicted\", got {spec:?}")
    })?;
    if c >= n {
        bail!("--target {c} is out of range: the model has {n} classes (0..{n})");
    }
    Ok(c)
}

/// Softmax probabilities of the first row, and the top five `(class, name, p)`.
fn top5(logits: &Tensor, classes: &[String]) -> Result<Vec<serde_json::Value>> {
    let p: Vec<f32> = candle_nn::ops::softmax(&logits.to_dtype(DType::F32)?, D::Minus1)?
        .flatten_all()?
        .to_vec1()?;
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|a, b| p[*b].total_cmp(&p[*a]));
    Ok(idx
        .iter()
        .take(5)
        .map(|&i| serde_json::json!({"class": i, "name": classes.get(i), "probability": p[i]}))
        .collect())
}

fn spinner(what: String) -> indicatif::ProgressBar {
    let s = indicatif::ProgressBar::new_spinner();
    s.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    s.set_message(what);
    s.enable_steady_tick(std::time::Duration::from_millis(120));
    s
}

pub fn run(a: &ExplainArgs) -> Result<()> {
    let (device, dtype) = (a.run.device()?, a.run.dtype());
    let loaded = load(&a.model, dtype, &device)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    let mut tensors = HashMap::new();
    let (result, picture) = match &loaded {
        Loaded::Image(m) => {
            if a.text.is_some() {
                bail!(
                    "{} is an image model: give --image or --index, not --text",
                    m.name
                );
            }
            let (pixels, label, source) = match (&a.image, a.index) {
                (Some(p), _) => {
                    let (px, _) = m.read_image(p, &device)?;
                    (px, None, p.display().to_string())
                }
                (None, i) if m.channels == 1 => {
                    let i = i.unwrap_or(0);
                    let (px, l) = m.dataset_row(i, &device)?;
                    (px, Some(l), format!("{} dataset row {i}", m.name))
                }
                (None, Some(_)) => bail!("{} has no built-in dataset: give --image", m.name),
                (None, None) => {
                    let p = crate::model::assets("photos")
                        .context("no --image given: the default photo could not be fetched")?
                        .join("chelsea.png");
                    let (px, _) = m.read_image(&p, &device)?;
                    (px, None, p.display().to_string())
                }
            };
            let x = (m.normalize)(&pixels)?.to_dtype(dtype)?;
            let logits = m.model.forward(&x)?;
            let class = target(&a.target, &logits, &m.classes)?;
            let range = m.input_range(&device)?;
            let method = build(
                &a.method,
                &a.params,
                &x.dims()[1..],
                m.black,
                range,
                m.cam_layer,
            )?;
            let bar = spinner(format!("{} on {}", a.method, m.name));
            let t0 = std::time::Instant::now();
            let attr = method.attribute(m.model.as_ref(), &x, &Target::Class(class))?;
            let secs = t0.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let maps = attr.attributions.to_dtype(DType::F32)?;
            let scale = (448 / m.size as u32).max(1);
            let px = pixels.get(0)?;
            let cells = vec![
                Cell::input(&px, scale, "").map_err(anyhow::Error::msg)?,
                Cell::attribution(&px, &maps.get(0)?, Sign::Signed, 0.6, scale)
                    .map_err(anyhow::Error::msg)?,
            ];
            let pred = logits.argmax(1)?.to_vec1::<u32>()?[0] as usize;
            let mut row_label = format!("pred {pred}: {}", m.classes[pred]);
            if let Some(l) = label {
                row_label = format!("label {l}: {}\n{row_label}", m.classes[l]);
            }
            let pic = Figure {
                title: format!(
                    "{} on {}: target {class} ({})",
                    a.method, m.name, m.classes[class]
                ),
                columns: vec![source.clone(), a.method.clone()],
                rows: vec![Row {
                    label: row_label,
                    cells,
                }],
                sign: Sign::Signed,
                notes: vec![],
            }
            .render()
            .map_err(anyhow::Error::msg)?;
            tensors.insert("input".to_string(), x.to_dtype(DType::F32)?);
            tensors.insert("attributions".to_string(), maps.clone());
            let json = summary(a, &attr, secs, &logits, class, &m.classes)?;
            let json = serde_json::json!({"input": source, "label": label, "result": json});
            (json, Picture::Png(pic))
        }
        Loaded::Text(m) => {
            if !TEXT_METHODS.contains(&a.method.as_str()) {
                bail!(
                    "{} is not available for text models; use one of: {}",
                    a.method,
                    TEXT_METHODS.join(", ")
                );
            }
            let text = a.text.as_deref().context("text models need --text")?;
            let (emb, tokens) = m.embed(text, &device)?;
            let emb = emb.to_dtype(dtype)?;
            let logits = m.explainable().forward(&emb)?;
            let class = target(&a.target, &logits, &m.classes)?;
            let method = build(&a.method, &a.params, &emb.dims()[1..], 0.0, (-1.0, 1.0), "")?;
            let bar = spinner(format!("{} on {}", a.method, m.name));
            let t0 = std::time::Instant::now();
            let attr = method.attribute(m.explainable(), &emb, &Target::Class(class))?;
            let secs = t0.elapsed().as_secs_f64();
            bar.finish_and_clear();
            // One score per token: the attribution summed over its embedding.
            let scores: Vec<f64> = attr
                .attributions
                .to_dtype(DType::F64)?
                .sum(2)?
                .squeeze(0)?
                .to_vec1()?;
            tensors.insert(
                "attributions".to_string(),
                attr.attributions.to_dtype(DType::F32)?,
            );
            let label = &m.classes[class];
            let title = format!("{} → {label}: {}", m.name, a.method);
            let html = candle_explain::viz::token_html(
                &title,
                &[(format!("{text} → {label}"), tokens.clone(), scores.clone())],
            )
            .map_err(anyhow::Error::msg)?;
            let json = summary(a, &attr, secs, &logits, class, &m.classes)?;
            let json = serde_json::json!({"input": text, "tokens": tokens, "token_scores": scores, "result": json});
            (json, Picture::Html(html))
        }
    };
    let st = a.out.join("attributions.safetensors");
    candle_core::safetensors::save(&tensors, &st)
        .with_context(|| format!("cannot write {}", st.display()))?;
    crate::write_file(
        &a.out.join("result.json"),
        serde_json::to_string_pretty(&result)?,
    )?;
    let pic = match picture {
        Picture::Png(p) => {
            let path = a.out.join("heatmap.png");
            p.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            path
        }
        Picture::Html(h) => {
            let path = a.out.join("tokens.html");
            crate::write_file(&path, h)?;
            path
        }
    };
    println!("{}", serde_json::to_string_pretty(&result["result"])?);
    println!(
        "wrote {}, {}, {}",
        a.out.join("result.json").display(),
        a.out.join("attributions.safetensors").display(),
        pic.display()
    );
    Ok(())
}

enum Picture {
    Png(image::RgbImage),
    Html(String),
}

fn summary(
    a: &ExplainArgs,
    attr: &Attribution,
    secs: f64,
    logits: &Tensor,
    class: usize,
    classes: &[String],
) -> Result<serde_json::Value> {
    let scalar = |t: &Tensor| -> Result<f32> {
        Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?[0])
    };
    let delta = attr.delta.as_ref().map(&scalar).transpose()?;
    let total = attr
        .attributions
        .to_dtype(DType::F32)?
        .sum_all()?
        .to_scalar::<f32>()?;
    Ok(serde_json::json!({
        "model": a.model,
        "method": a.method,
        "parameters": a.params.to_json(),
        "device": format!("{:?}", a.run.device),
        "dtype": format!("{:?}", a.run.dtype),
        "target": class,
        "target_name": classes.get(class),
        "top5": top5(logits, classes)?,
        "explained_output": scalar(&attr.output)?,
        "baseline_output": attr.baseline_output.as_ref().map(&scalar).transpose()?,
        "attribution_sum": total,
        "completeness_error": delta,
        "seconds": secs,
        "peak_memory_mb": peak_memory_mb(),
    }))
}

/// The process's peak resident memory so far (VmHWM), in MiB, where the OS reports it.
fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}
