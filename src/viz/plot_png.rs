//! The line plot of [`super::line_plot_svg`] as a PNG, drawn with the bitmap font (no font
//! file, no SVG renderer): reports embed the SVG and ship the PNG for slides and READMEs.

use super::text::{self, GLYPH, LINE};
use super::{nice_ticks, plot_ranges, Series, PALETTE};
use image::{Rgb, RgbImage};

const W: u32 = 960;
const H: u32 = 600;
const INK: Rgb<u8> = Rgb([30, 30, 30]);
const GRID: Rgb<u8> = Rgb([229, 229, 229]);

fn hex(c: &str) -> Rgb<u8> {
    let v = |i: usize| u8::from_str_radix(&c[i..i + 2], 16).unwrap_or(0);
    Rgb([v(1), v(3), v(5)])
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// A `width`-pixel line from `a` to `b`; `dash` (on, off) in pixels along the line.
fn line(img: &mut RgbImage, a: (f64, f64), b: (f64, f64), c: Rgb<u8>, width: i64, dash: Option<(usize, usize)>) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0) as usize;
    for s in 0..=steps {
        if let Some((on, off)) = dash {
            if s % (on + off) >= on {
                continue;
            }
        }
        let t = s as f64 / steps as f64;
        let (x, y) = ((a.0 + t * (b.0 - a.0)).round() as i64, (a.1 + t * (b.1 - a.1)).round() as i64);
        for dx in 0..width {
            for dy in 0..width {
                put(img, x + dx - width / 2, y + dy - width / 2, c);
            }
        }
    }
}

fn label(img: &mut RgbImage, x: f64, y: f64, s: &str, scale: u32) {
    text::draw(img, x.max(0.0) as u32, y.max(0.0) as u32, s, scale, INK);
}

/// The curves of `series` on a 960 × 600 white picture: title, axes with 1-2-5 ticks and
/// grid lines, the axis labels (the y label above its axis), and a legend with the
/// SVG's colours (dashed past the tenth series). The same errors as the SVG.
pub fn line_plot_png(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<RgbImage, String> {
    let ((x0, x1), (y0, y1)) = plot_ranges("line_plot_png", series)?;
    let longest = series.iter().map(|s| s.name.chars().count()).max().unwrap_or(0) as f64;
    let (left, top, bottom) = (90.0, 70.0, 60.0);
    let right = (50.0 + (GLYPH as f64) * longest).clamp(140.0, 360.0);
    let (pw, ph) = (W as f64 - left - right, H as f64 - top - bottom);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;
    let mut img = RgbImage::from_pixel(W, H, Rgb([255, 255, 255]));
    // A long title at half size rather than cut off.
    let scale = if text::width(title, 2) + 20 <= W { 2 } else { 1 };
    let tw = text::width(title, scale) as f64;
    label(&mut img, (W as f64 - tw) / 2.0, 12.0, title, scale);
    label(&mut img, left - 60.0, top - 2.0 * LINE as f64 - 4.0, y_label, 1);
    let xw = text::width(x_label, 1) as f64;
    label(&mut img, left + (pw - xw) / 2.0, H as f64 - 22.0, x_label, 1);
    let b = top + ph;
    for (v, t) in nice_ticks(x0, x1) {
        let x = px(v);
        line(&mut img, (x, top), (x, b), GRID, 1, None);
        line(&mut img, (x, b), (x, b + 5.0), INK, 1, None);
        label(&mut img, x - text::width(&t, 1) as f64 / 2.0, b + 10.0, &t, 1);
    }
    for (v, t) in nice_ticks(y0, y1) {
        let y = py(v);
        line(&mut img, (left, y), (left + pw, y), GRID, 1, None);
        line(&mut img, (left - 5.0, y), (left, y), INK, 1, None);
        label(&mut img, left - 9.0 - text::width(&t, 1) as f64, y - GLYPH as f64 / 2.0, &t, 1);
    }
    for (a, c) in [((left, top), (left + pw, top)), ((left + pw, top), (left + pw, b)), ((left, b), (left + pw, b)), ((left, top), (left, b))] {
        line(&mut img, a, c, INK, 1, None);
    }
    let style = |i: usize| (hex(PALETTE[i % PALETTE.len()]), [None, Some((8, 4)), Some((3, 3))][(i / PALETTE.len()) % 3]);
    for (i, s) in series.iter().enumerate() {
        let (c, dash) = style(i);
        let pts: Vec<(f64, f64)> = s.x.iter().zip(&s.y).map(|(x, y)| (px(*x), py(*y))).collect();
        for w in pts.windows(2) {
            line(&mut img, w[0], w[1], c, 2, dash);
        }
        if pts.len() <= super::MARKER_MAX_POINTS {
            for p in &pts {
                line(&mut img, (p.0 - 2.0, p.1), (p.0 + 2.0, p.1), c, 5, None);
            }
        }
        for (x, lo, hi) in s.bars() {
            let (x, a, b) = (px(x), py(lo), py(hi));
            line(&mut img, (x, a), (x, b), c, 1, None);
            line(&mut img, (x - 3.0, a), (x + 3.0, a), c, 1, None);
            line(&mut img, (x - 3.0, b), (x + 3.0, b), c, 1, None);
        }
        let y = top + 8.0 + 18.0 * i as f64;
        let lx = left + pw + 14.0;
        line(&mut img, (lx, y), (lx + 22.0, y), c, 2, dash);
        label(&mut img, lx + 30.0, y - GLYPH as f64 / 2.0, &s.name, 1);
    }
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each series' colour lands on the picture (its line and legend), the background stays
    /// white around them, and bad series are errors as in the SVG.
    #[test]
    fn draws_every_series_in_its_colour() {
        let s = vec![
            Series::new("a", vec![0.0, 1.0, 2.0], vec![0.0, 1.0, 0.5]),
            Series::new("b", vec![0.0, 2.0], vec![1.0, 0.0]),
        ];
        let img = line_plot_png("t", "x", "y", &s).unwrap();
        assert_eq!((img.width(), img.height()), (W, H));
        for i in 0..2 {
            let c = hex(PALETTE[i]);
            let n = img.pixels().filter(|p| **p == c).count();
            assert!(n > 200, "series {i}: {n} pixels");
        }
        assert_eq!(*img.get_pixel(2, H - 2), Rgb([255, 255, 255]));
        assert!(line_plot_png("t", "x", "y", &[]).is_err());
        assert!(line_plot_png("t", "x", "y", &[Series::new("n", vec![0.0], vec![f64::NAN])]).is_err());
    }
}
