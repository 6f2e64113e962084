//! `candle-explain explain`: one input, one method.

use crate::method::{build, layer_map_on_input, MethodArgs, LAYER_METHODS, TEXT_METHODS};
use crate::model::{load, Loaded};
use crate::RunArgs;
use anyhow::{bail, Context, Result};
use candle_core::{DType, Tensor, D};
use candle_explain::models::text::length_buckets;
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
    /// A file of texts, one per line, explained in padded batches of --text-batch sentences
    /// of similar lengths, each with its attention mask (each sentence gets what it gets
    /// alone).
    #[arg(long, conflicts_with_all = ["text", "image", "index"])]
    pub text_file: Option<PathBuf>,
    /// Sentences per padded batch of --text-file, sorted by length so that little is padded
    /// (IG-50 on MiniLM, 32 sentences, this CPU, one run: 2.7 sentences/s in batches of 8,
    /// 2.6 one at a time, 1.8 as one batch padded to the longest).
    #[arg(long, default_value_t = 8)]
    pub text_batch: usize,
    /// Token classification (NER): explain the label of this token (0 is the first, [CLS]).
    #[arg(long)]
    pub token: Option<usize>,
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

pub fn target(spec: &str, logits: &Tensor, classes: &[String]) -> Result<usize> {
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

/// A spinner with a message and the elapsed time, for work without a count.
pub fn spinner(what: String) -> indicatif::ProgressBar {
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
                &m.cam_layer,
            )?;
            let bar = spinner(format!("{} on {}", a.method, m.name));
            let t0 = std::time::Instant::now();
            let attr = method.attribute(m.model.as_ref(), &x, &Target::Class(class))?;
            let secs = t0.elapsed().as_secs_f64();
            bar.finish_and_clear();
            let maps = attr.attributions.to_dtype(DType::F32)?;
            tensors.insert("input".to_string(), x.to_dtype(DType::F32)?);
            tensors.insert("attributions".to_string(), maps.clone());
            let json = summary(a, &attr, secs, &logits, class, &m.classes)?;
            let json = serde_json::json!({"input": source, "label": label, "result": json});
            // A layer method's result has the layer's shape: drawn over the input when the
            // layer is spatial, else only in the JSON and the safetensors.
            let shown = match LAYER_METHODS.contains(&a.method.as_str()) {
                false => Some(maps.clone()),
                true => layer_map_on_input(&maps, &x)?,
            };
            match shown {
                None => {
                    eprintln!(
                    "note: layer {:?} is not spatial ({:?}): no heatmap, the values are in attributions.safetensors",
                    a.params.layer.as_deref().unwrap_or(&m.cam_layer),
                    &maps.dims()[1..]
                );
                    (json, Picture::None)
                }
                Some(shown) => {
                    // Layer and neuron methods name their layer (and neuron) over the map.
                    let layer = a.params.layer.as_deref().unwrap_or(&m.cam_layer);
                    let column = if LAYER_METHODS.contains(&a.method.as_str()) {
                        format!("{} at {layer}", a.method)
                    } else if a.method.starts_with("neuron-") {
                        format!("{}, neuron {} of {layer}", a.method, a.params.neuron)
                    } else {
                        a.method.clone()
                    };
                    let scale = (448 / m.size as u32).max(1);
                    let px = pixels.get(0)?;
                    let cells = vec![
                        Cell::input(&px, scale, "").map_err(anyhow::Error::msg)?,
                        Cell::attribution(&px, &shown.get(0)?, Sign::Signed, 0.6, scale)
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
                        columns: vec![source.clone(), column],
                        rows: vec![Row {
                            label: row_label,
                            cells,
                        }],
                        sign: Sign::Signed,
                        notes: vec![],
                    }
                    .render()
                    .map_err(anyhow::Error::msg)?;
                    (json, Picture::Png(pic))
                }
            }
        }
        Loaded::Text(m) => {
            if !TEXT_METHODS.contains(&a.method.as_str()) {
                bail!(
                    "{} is not available for text models; use one of: {}",
                    a.method,
                    TEXT_METHODS.join(", ")
                );
            }
            if let Some(file) = &a.text_file {
                if m.token_labels().is_some() {
                    bail!("a token-classification model explains one token of one text: use --text with --token");
                }
                return run_text_file(a, m, file, &device, dtype);
            }
            let text = a
                .text
                .as_deref()
                .context("text models need --text (or --text-file)")?;
            let (emb, tokens, words) = m.embed_words(text, &device)?;
            let emb = emb.to_dtype(dtype)?;
            let all_logits = m.explainable().forward(&emb)?;
            // A token-classification model's outputs are (1, L · labels): the token's slice.
            let (logits, offset) = match m.token_labels() {
                None => (all_logits, 0),
                Some(labels) => {
                    let t = a.token.context(
                        "a token-classification model: say which token to explain with --token N (0 is the first, [CLS])",
                    )?;
                    if t >= tokens.len() {
                        bail!(
                            "--token {t}: the text has {} tokens (0..{})",
                            tokens.len(),
                            tokens.len()
                        );
                    }
                    (all_logits.narrow(1, t * labels, labels)?, t * labels)
                }
            };
            if a.token.is_some() && m.token_labels().is_none() {
                bail!("--token is for token-classification models; this one classifies the whole text");
            }
            let class = target(&a.target, &logits, &m.classes)?;
            let method = build(
                &a.method,
                &a.params,
                &emb.dims()[1..],
                0.0,
                (-1.0, 1.0),
                "embeddings",
            )?;
            let bar = spinner(format!("{} on {}", a.method, m.name));
            let t0 = std::time::Instant::now();
            let attr = method.attribute(m.explainable(), &emb, &Target::Class(offset + class))?;
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
            let mut label = m.classes[class].clone();
            if let Some(t) = a.token {
                label = format!("token {t} ({}) is {label}", tokens[t]);
            }
            let title = format!("{} → {label}: {}", m.name, a.method);
            // Words (their pieces' scores summed; special tokens belong to none, so they
            // neither show nor set the colour scale), then the pieces themselves.
            let word_scores: Vec<f64> = words
                .iter()
                .map(|w| w.tokens.iter().map(|&i| scores[i]).sum())
                .collect();
            let word_text: Vec<String> = words.iter().map(|w| w.word.clone()).collect();
            let html = candle_explain::viz::token_html(
                &title,
                &[
                    (
                        format!("{text} → {label} (words)"),
                        word_text,
                        word_scores.clone(),
                    ),
                    (
                        "the same as tokens (pieces and special tokens)".to_string(),
                        tokens.clone(),
                        scores.clone(),
                    ),
                ],
            )
            .map_err(anyhow::Error::msg)?;
            let json = summary(a, &attr, secs, &logits, class, &m.classes)?;
            let words_json: Vec<serde_json::Value> = words
                .iter()
                .zip(&word_scores)
                .map(|(w, s)| serde_json::json!({"word": w.word, "score": s, "tokens": w.tokens}))
                .collect();
            let json = serde_json::json!({"input": text, "words": words_json, "tokens": tokens, "token": a.token, "token_scores": scores, "result": json});
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
        Picture::None => PathBuf::from("no picture (the layer is not spatial)"),
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
    None,
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

/// One sentence's explanation: its target class, one score per token (the attribution
/// summed over the embedding), the explained output and the attributions `(1, L, H)` in f32.
pub struct TextResult {
    pub class: usize,
    pub scores: Vec<f64>,
    pub output: f64,
    pub attributions: Tensor,
}

/// Explains `lines` with `method` in padded batches of up to `batch` sentences of similar
/// lengths, each with its attention mask (BERT and the LSTM read it): padding gets exactly 0
/// and each sentence what it gets alone. `choose(i, logits)` picks sentence `i`'s target
/// from its logits `(1, classes)`. Returns each sentence's tokens and result, in order.
#[allow(clippy::too_many_arguments)]
pub fn explain_texts(
    m: &crate::model::TextModel,
    lines: &[&str],
    method: &str,
    params: &crate::method::MethodArgs,
    batch: usize,
    device: &candle_core::Device,
    dtype: DType,
    choose: &dyn Fn(usize, &Tensor) -> Result<usize>,
) -> Result<(Vec<Vec<String>>, Vec<TextResult>)> {
    if batch == 0 {
        bail!("the text batch must be at least 1 sentence");
    }
    let mut embs = vec![];
    let mut tokens = vec![];
    for l in lines {
        let (e, t) = m.embed(l, device)?;
        embs.push(e.to_dtype(dtype)?);
        tokens.push(t);
    }
    let Some(hidden) = embs.first().map(|e| e.dim(2)).transpose()? else {
        return Ok((tokens, vec![]));
    };
    let lengths: Vec<usize> = tokens.iter().map(Vec::len).collect();
    let mut results: Vec<Option<TextResult>> = (0..lines.len()).map(|_| None).collect();
    // Sentences of similar lengths share a batch (a batch padded to its longest sentence
    // pays for the padding).
    for group in length_buckets(&lengths, batch) {
        let glen = group.iter().map(|&i| lengths[i]).max().unwrap_or(1);
        let padded = group
            .iter()
            .map(|&i| Ok(embs[i].pad_with_zeros(1, 0, glen - lengths[i])?))
            .collect::<Result<Vec<_>>>()?;
        let x = Tensor::cat(&padded, 0)?;
        // Built per batch: feature masks (LIME, KernelSHAP) and neuron indices are per the
        // batch's padded length.
        let method = build(method, params, &[glen, hidden], 0.0, (-1.0, 1.0), "embeddings")?;
        let mask: Vec<f32> = group
            .iter()
            .flat_map(|&i| {
                let n = lengths[i];
                (0..glen).map(move |k| (k < n) as u8 as f32)
            })
            .collect();
        let mask = Tensor::from_vec(mask, (group.len(), glen), device)?;
        let model =
            candle_explain::core::WithInputs::new(m.explainable()).with("attention_mask", mask)?;
        let logits = model.forward(&x)?;
        let classes: Vec<usize> = group
            .iter()
            .enumerate()
            .map(|(r, &i)| choose(i, &logits.narrow(0, r, 1)?))
            .collect::<Result<_>>()?;
        let attr = method.attribute(&model, &x, &Target::PerExample(classes.clone()))?;
        let scores: Vec<Vec<f64>> = attr.attributions.to_dtype(DType::F64)?.sum(2)?.to_vec2()?;
        let outs: Vec<f64> = attr.output.to_dtype(DType::F64)?.to_vec1()?;
        for (r, &i) in group.iter().enumerate() {
            results[i] = Some(TextResult {
                class: classes[r],
                scores: scores[r][..lengths[i]].to_vec(),
                output: outs[r],
                attributions: attr
                    .attributions
                    .narrow(0, r, 1)?
                    .narrow(1, 0, lengths[i])?
                    .to_dtype(DType::F32)?,
            });
        }
    }
    Ok((tokens, results.into_iter().flatten().collect()))
}

/// `--text-file`: every line explained in padded batches of similar lengths
/// ([`explain_texts`]); one coloured section per sentence in tokens.html.
fn run_text_file(
    a: &ExplainArgs,
    m: &crate::model::TextModel,
    file: &std::path::Path,
    device: &candle_core::Device,
    dtype: DType,
) -> Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        bail!("{}: no text (one sentence per line)", file.display());
    }
    if a.text_batch == 0 {
        bail!("--text-batch must be at least 1");
    }
    let t0 = std::time::Instant::now();
    let choose = |_: usize, logits: &Tensor| target(&a.target, logits, &m.classes);
    let (tokens, explained) = explain_texts(
        m,
        &lines,
        &a.method,
        &a.params,
        a.text_batch,
        device,
        dtype,
        &choose,
    )?;
    let len = tokens.iter().map(Vec::len).max().unwrap_or(0);
    let all = explained
        .iter()
        .map(|r| Ok(r.attributions.pad_with_zeros(1, 0, len - r.scores.len())?))
        .collect::<Result<Vec<_>>>()?;
    let results: Vec<(usize, Vec<f64>, f64)> = explained
        .into_iter()
        .map(|r| (r.class, r.scores, r.output))
        .collect();
    let secs = t0.elapsed().as_secs_f64();
    let rows: Vec<(String, Vec<String>, Vec<f64>)> = lines
        .iter()
        .zip(&tokens)
        .zip(&results)
        .map(|((l, t), (c, s, _))| (format!("{l} → {}", m.classes[*c]), t.clone(), s.clone()))
        .collect();
    let title = format!("{}: {} on {} sentences", m.name, a.method, lines.len());
    let html = candle_explain::viz::token_html(&title, &rows).map_err(anyhow::Error::msg)?;
    let json = serde_json::json!({
        "model": a.model,
        "method": a.method,
        "parameters": a.params.to_json(),
        "input": file.display().to_string(),
        "seconds": secs,
        "sentences_per_second": lines.len() as f64 / secs,
        "sentences": lines.iter().zip(&tokens).zip(&results).map(|((l, t), (c, s, o))| serde_json::json!({
            "text": l, "tokens": t, "token_scores": s, "target": c, "target_name": m.classes[*c], "explained_output": o,
        })).collect::<Vec<_>>(),
    });
    let mut tensors = HashMap::new();
    tensors.insert("attributions".to_string(), Tensor::cat(&all, 0)?);
    let st = a.out.join("attributions.safetensors");
    candle_core::safetensors::save(&tensors, &st)
        .with_context(|| format!("cannot write {}", st.display()))?;
    crate::write_file(
        &a.out.join("result.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    crate::write_file(&a.out.join("tokens.html"), html)?;
    println!(
        "{} sentences in {secs:.2} s ({:.1} per second); wrote {}/{{result.json, tokens.html, attributions.safetensors}}",
        lines.len(),
        lines.len() as f64 / secs,
        a.out.display()
    );
    Ok(())
}
