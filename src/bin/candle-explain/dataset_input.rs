//! The examples of a dataset job, read from the formats people keep datasets in.

use crate::model::{ImageModel, Loaded};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// A dataset's examples, in the order shards cut them.
pub enum Examples {
    /// Raw pixels `(N, C, H, W)`, 0–255, at the model's input size.
    Images(Tensor),
    Texts(Vec<String>),
}

pub struct Dataset {
    pub examples: Examples,
    /// One per example when the format carries them.
    pub labels: Option<Vec<usize>>,
    /// Where the examples came from, for the job's record.
    pub source: String,
}

impl Dataset {
    pub fn len(&self) -> Result<usize> {
        Ok(match &self.examples {
            Examples::Images(t) => t.dim(0)?,
            Examples::Texts(l) => l.len(),
        })
    }

    /// SHA-256 of the examples as the model will see them (pixels or texts) and the labels:
    /// part of the job's hash, so that a job folder never mixes shards of two datasets.
    pub fn fingerprint(&self) -> Result<String> {
        let mut bytes: Vec<u8> = match &self.examples {
            Examples::Images(t) => t
                .flatten_all()?
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            Examples::Texts(l) => l.join("\n").into_bytes(),
        };
        for l in self.labels.iter().flatten() {
            bytes.extend((*l as u64).to_le_bytes());
        }
        Ok(candle_explain::jobs::manifest::sha256_bytes(&bytes))
    }
}

/// The formats `data` may be in; `None` infers it from the path.
pub const FORMATS: &[&str] = &["builtin", "idx", "csv", "images", "lines", "jsonl"];

fn infer_format(path: &Path) -> &'static str {
    let name = path.to_string_lossy().to_ascii_lowercase();
    if path.is_dir() {
        "images"
    } else if name.contains("idx3") {
        "idx"
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        "csv"
    } else if name.ends_with(".jsonl") || name.ends_with(".ndjson") {
        "jsonl"
    } else {
        "lines"
    }
}

/// Reads `data` (`None`: the model's built-in dataset) in `format` for model `m`.
pub fn read(
    m: &Loaded,
    data: Option<&str>,
    labels: Option<&str>,
    format: Option<&str>,
    device: &Device,
) -> Result<Dataset> {
    let path = data.map(PathBuf::from);
    let format = match (format, &path) {
        (Some(f), _) => f,
        (None, None) => "builtin",
        (None, Some(p)) => infer_format(p),
    };
    if !FORMATS.contains(&format) {
        bail!("format {format:?}: one of {}", FORMATS.join(", "));
    }
    let source = path
        .as_ref()
        .map_or("the model's built-in dataset".to_string(), |p| p.display().to_string());
    if let Some(p) = &path {
        if !p.exists() {
            bail!("data {}: no such file or folder", p.display());
        }
    }
    let (examples, labels) = match (m, format, &path) {
        (Loaded::Image(im), "builtin", _) => {
            let d = im.dataset(device)?;
            (Examples::Images(d.images), Some(to_usize(&d.labels)))
        }
        (Loaded::Image(im), "idx", Some(p)) => {
            let l = match labels {
                Some(l) => PathBuf::from(l),
                None => sibling_labels(p)?,
            };
            let d = candle_explain::models::data::load_idx(p, &l, device)?;
            check_size(im, &d.images)?;
            (Examples::Images(d.images), Some(to_usize(&d.labels)))
        }
        (Loaded::Image(im), "csv", Some(p)) => {
            let d = candle_explain::models::data::load_mnist_csv(p, device)?;
            check_size(im, &d.images)?;
            (Examples::Images(d.images), Some(to_usize(&d.labels)))
        }
        (Loaded::Image(im), "images", Some(p)) => (Examples::Images(image_folder(im, p, None, device)?), None),
        (Loaded::Image(im), "jsonl", Some(p)) => {
            let (rows, labels) = jsonl(p, "image")?;
            let dir = p.parent().unwrap_or(Path::new("."));
            let px = rows
                .iter()
                .map(|f| im.read_image(&dir.join(f), device).map(|(t, _)| t))
                .collect::<Result<Vec<_>>>()?;
            (Examples::Images(Tensor::cat(&px, 0)?), labels)
        }
        (Loaded::Text(_), "lines", Some(p)) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            let lines = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            (Examples::Texts(lines), None)
        }
        (Loaded::Text(_), "jsonl", Some(p)) => {
            let (rows, labels) = jsonl(p, "text")?;
            (Examples::Texts(rows), labels)
        }
        (Loaded::Text(t), "builtin", _) => bail!(
            "{} has no built-in dataset: give data (a text file, one example per line, or JSON lines with \"text\")",
            t.name
        ),
        (Loaded::Image(_), f, _) => bail!(
            "format {f} is for text models; image models read builtin, idx, csv, images (a folder) or jsonl"
        ),
        (Loaded::Text(_), f, _) => {
            bail!("format {f} is for image models; text models read lines or jsonl")
        }
    };
    let ds = Dataset {
        examples,
        labels,
        source: format!("{source} ({format})"),
    };
    if ds.len()? == 0 {
        bail!("data {}: no examples", ds.source);
    }
    if let (Some(l), Loaded::Image(im)) = (&ds.labels, m) {
        check_labels(l, im.classes.len(), &ds.source)?;
    }
    if let (Some(l), Loaded::Text(tm)) = (&ds.labels, m) {
        check_labels(l, tm.classes.len(), &ds.source)?;
    }
    Ok(ds)
}

fn to_usize(l: &[u8]) -> Vec<usize> {
    l.iter().map(|&v| v as usize).collect()
}

fn check_labels(labels: &[usize], classes: usize, source: &str) -> Result<()> {
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, l)| **l >= classes) {
        bail!("{source}: example {i} has label {l}, but the model has {classes} classes");
    }
    Ok(())
}

fn check_size(m: &ImageModel, images: &Tensor) -> Result<()> {
    let want = [m.channels, m.size, m.size];
    if images.dims()[1..] != want {
        bail!(
            "the images are {:?} but {} takes {want:?}; give an image folder to have them resized",
            &images.dims()[1..],
            m.name
        );
    }
    Ok(())
}

/// `…-images-idx3-ubyte[.gz]` → `…-labels-idx1-ubyte[.gz]` (the MNIST / Fashion-MNIST names).
fn sibling_labels(images: &Path) -> Result<PathBuf> {
    let name = images.file_name().unwrap_or_default().to_string_lossy();
    let guess = name.replace("images-idx3", "labels-idx1");
    let p = images.with_file_name(&guess);
    if guess == name || !p.exists() {
        bail!(
            "{}: give the labels file (labels = \"…-labels-idx1-ubyte.gz\"); {} is not there",
            images.display(),
            p.display()
        );
    }
    Ok(p)
}

/// The PNG / JPEG images of `dir` in name order (the first `limit`), resized to the model's
/// input: raw pixels `(N, C, H, W)`.
pub fn image_folder(
    m: &ImageModel,
    dir: &Path,
    limit: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("{}: not a readable folder", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            matches!(
                p.extension()
                    .and_then(|e| e.to_str())
                    .map(str::to_ascii_lowercase)
                    .as_deref(),
                Some("png" | "jpg" | "jpeg")
            )
        })
        .collect();
    // Name order: stable across machines, whatever order the file system lists.
    files.sort();
    files.truncate(limit.unwrap_or(usize::MAX));
    if files.is_empty() {
        bail!("{}: no .png / .jpg images", dir.display());
    }
    let rows = files
        .iter()
        .map(|p| m.read_image(p, device).map(|(t, _)| t))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&rows, 0)?)
}

/// JSON lines with `field` (a string) and an optional integer `"label"` on each line; blank
/// lines are skipped. Labels are all there or none.
fn jsonl(path: &Path, field: &str) -> Result<(Vec<String>, Option<Vec<usize>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut rows, mut labels) = (vec![], vec![]);
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{} line {}", path.display(), n + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        let s = v[field]
            .as_str()
            .with_context(|| format!("{}: expected a string field {field:?}", at()))?;
        rows.push(s.to_string());
        match &v["label"] {
            serde_json::Value::Null => {}
            l => labels.push(
                l.as_u64()
                    .with_context(|| format!("{}: \"label\" must be a class index", at()))?
                    as usize,
            ),
        }
    }
    let labels = match labels.len() {
        0 => None,
        n if n == rows.len() => Some(labels),
        n => bail!(
            "{}: {n} of {} lines have a \"label\"; give it on every line or on none",
            path.display(),
            rows.len()
        ),
    };
    Ok((rows, labels))
}
