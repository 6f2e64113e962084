//! Pictures of attributions that need no plotting library:
//! - [`heatmap`]: an attribution map over its image (diverging red / blue for signed maps,
//!   red for absolute or positive-only ones), upscaled, as an RGB image to save as PNG;
//! - [`grid`]: several such pictures side by side, one row per input;
//! - [`token_html`]: a self-contained HTML page colouring each token by its score, with the
//!   score in a tooltip and a legend.

use candle_core::Tensor;
pub use image::RgbImage;

/// What part of a signed attribution a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Red positive, blue negative, white 0, scaled by the largest |value|.
    Signed,
    /// |value|, red, scaled by the largest.
    Absolute,
    /// Positive values only, red; negatives are dropped.
    Positive,
}

/// One `(channels, h, w)` image (values in any range; drawn in grey, or in colour for three
/// channels, stretched to [0, 1]) with its attribution map (`(channels, h, w)` summed over
/// channels, or `(h, w)`) blended on top with opacity `alpha`, each pixel `scale`× larger.
pub fn heatmap(image: &Tensor, attribution: &Tensor, sign: Sign, alpha: f32, scale: u32) -> Result<RgbImage, String> {
    let err = |e: candle_core::Error| e.to_string();
    let (c, h, w) = image.dims3().map_err(|_| format!("the image must be (channels, h, w), got {:?}", image.dims()))?;
    if c != 1 && c != 3 {
        return Err(format!("the image needs 1 or 3 channels, got {c}"));
    }
    let map = match attribution.rank() {
        3 => attribution.sum(0).map_err(err)?,
        _ => attribution.clone(),
    };
    if map.dims() != [h, w] {
        return Err(format!("the attribution {:?} does not match the image {:?}", attribution.dims(), image.dims()));
    }
    if !(0.0..=1.0).contains(&alpha) || scale == 0 {
        return Err(format!("alpha must be in [0, 1] and scale ≥ 1, got {alpha} and {scale}"));
    }
    let f32s = |t: &Tensor| -> Result<Vec<f32>, String> { t.to_dtype(candle_core::DType::F32).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).map_err(err) };
    let (px, a) = (f32s(image)?, f32s(&map)?);
    let (lo, hi) = px.iter().filter(|v| v.is_finite()).fold((f32::MAX, f32::MIN), |(l, u), v| (l.min(*v), u.max(*v)));
    let a: Vec<f32> = a.iter().map(|v| if v.is_finite() { *v } else { 0.0 }).map(|v| match sign { Sign::Signed => v, Sign::Absolute => v.abs(), Sign::Positive => v.max(0.0) }).collect();
    let top = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    let mut img = RgbImage::new(w as u32 * scale, h as u32 * scale);
    for y in 0..h {
        for x in 0..w {
            let grey = |k: usize| 255.0 * (px[k * h * w + y * w + x] - lo) / (hi - lo).max(1e-12);
            let base = if c == 3 { [grey(0), grey(1), grey(2)] } else { [grey(0); 3] };
            let t = (a[y * w + x] / top).clamp(-1.0, 1.0);
            let fade = 255.0 * (1.0 - t.abs());
            let heat = if t >= 0.0 { [255.0, fade, fade] } else { [fade, fade, 255.0] };
            let rgb = image::Rgb([0, 1, 2].map(|i| ((1.0 - alpha) * base[i] + alpha * heat[i]).round().clamp(0.0, 255.0) as u8));
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(x as u32 * scale + dx, y as u32 * scale + dy, rgb);
                }
            }
        }
    }
    Ok(img)
}

/// Pictures laid out in rows (every picture of a row the same height), `pad` white pixels
/// between them.
pub fn grid(rows: &[Vec<RgbImage>], pad: u32) -> RgbImage {
    let width = rows.iter().map(|r| r.iter().map(|i| i.width() + pad).sum::<u32>()).max().unwrap_or(0);
    let height: u32 = rows.iter().map(|r| r.iter().map(|i| i.height()).max().unwrap_or(0) + pad).sum();
    let mut out = RgbImage::from_pixel(width.max(1), height.max(1), image::Rgb([255, 255, 255]));
    let mut y = 0;
    for r in rows {
        let mut x = 0;
        for i in r {
            image::imageops::replace(&mut out, i, x as i64, y as i64);
            x += i.width() + pad;
        }
        y += r.iter().map(|i| i.height()).max().unwrap_or(0) + pad;
    }
    out
}

/// Escapes text for HTML element content and attribute values.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Background colour of a score in [−1, 1]: white at 0, red for positive, blue for negative.
fn colour(v: f64) -> String {
    let v = if v.is_finite() { v.clamp(-1.0, 1.0) } else { 0.0 };
    let fade = |a: f64| (255.0 * (1.0 - a.abs())).round() as u8;
    if v >= 0.0 { format!("rgb(255,{0},{0})", fade(v)) } else { format!("rgb({0},{0},255)", fade(v)) }
}

/// One `<section>` per row: `(caption, tokens, scores)`; tokens and scores must pair up.
pub fn token_html(title: &str, rows: &[(String, Vec<String>, Vec<f64>)]) -> Result<String, String> {
    let mut body = String::new();
    for (caption, tokens, scores) in rows {
        if tokens.len() != scores.len() {
            return Err(format!("{caption}: {} tokens but {} scores", tokens.len(), scores.len()));
        }
        let scale = scores.iter().filter(|v| v.is_finite()).fold(0f64, |m, v| m.max(v.abs())).max(1e-12);
        body.push_str(&format!("<section><h2>{}</h2><p>", escape(caption)));
        for (t, s) in tokens.iter().zip(scores) {
            body.push_str(&format!("<span class=\"tok\" style=\"background:{}\" title=\"{:+.4}\">{}</span> ", colour(s / scale), s, escape(t)));
        }
        body.push_str(&format!("</p><p class=\"scale\">largest |score| {scale:.4}</p></section>\n"));
    }
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title><style>\
body{{font-family:sans-serif;max-width:60em;margin:2em auto}} .tok{{padding:0.1em 0.2em;border-radius:0.2em;line-height:2}} \
.scale{{color:#666;font-size:0.8em}} .legend span{{display:inline-block;width:4em;text-align:center}}</style></head><body>\
<h1>{t}</h1><p class=\"legend\">legend: <span style=\"background:{neg}\">−max</span><span style=\"background:#fff\">0</span>\
<span style=\"background:{pos}\">+max</span> (each row scaled by its largest |score|; hover a token for its score)</p>\n{body}</body></html>\n",
        t = escape(title),
        neg = colour(-1.0),
        pos = colour(1.0),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A heatmap encodes to a PNG that decodes to the expected size, with a positive pixel
    /// red, a negative one blue and a zero one the image's grey.
    #[test]
    fn heatmap_png_round_trip() {
        let dev = candle_core::Device::Cpu;
        let img = Tensor::new(&[[[0f32, 0.5], [1.0, 0.25]]], &dev).unwrap();
        let attr = Tensor::new(&[[[2f32, -2.0], [0.0, 1.0]]], &dev).unwrap();
        let pic = heatmap(&img, &attr, Sign::Signed, 1.0, 3).unwrap();
        let mut png = std::io::Cursor::new(Vec::new());
        pic.write_to(&mut png, image::ImageFormat::Png).unwrap();
        let back = image::load_from_memory(png.get_ref()).unwrap().to_rgb8();
        assert_eq!((back.width(), back.height()), (6, 6));
        assert_eq!(back.get_pixel(0, 0).0, [255, 0, 0]);
        assert_eq!(back.get_pixel(3, 0).0, [0, 0, 255]);
        assert_eq!(back.get_pixel(0, 3).0, [255, 255, 255], "no attribution at alpha 1: white");
        let faint = heatmap(&img, &attr, Sign::Signed, 0.0, 1).unwrap();
        assert_eq!(faint.get_pixel(1, 0).0, [128, 128, 128], "alpha 0 shows the image");
        let pos = heatmap(&img, &attr, Sign::Positive, 1.0, 1).unwrap();
        assert_eq!(pos.get_pixel(1, 0).0, [255, 255, 255], "negatives dropped");
        let g = grid(&[vec![pic.clone(), pic], vec![faint]], 2);
        assert_eq!((g.width(), g.height()), (16, 12));
        assert!(heatmap(&img, &attr.narrow(2, 0, 1).unwrap(), Sign::Signed, 0.5, 1).is_err());
    }

    #[test]
    fn page_has_every_token_escaped_and_coloured() {
        let rows = vec![("IG".to_string(), vec!["a".into(), "<b>".into(), "film".into()], vec![0.5, -1.0, 0.0])];
        let html = token_html("x & y", &rows).unwrap();
        for needle in [">a</span>", ">&lt;b&gt;</span>", ">film</span>", "x &amp; y", "legend", "rgb(0,0,255)", "rgb(255,128,128)", "title=\"+0.0000\""] {
            assert!(html.contains(needle), "missing {needle:?} in {html}");
        }
        assert!(token_html("t", &[("r".into(), vec!["a".into()], vec![])]).is_err());
    }
}
