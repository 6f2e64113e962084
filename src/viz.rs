//! Pictures of attributions that need no plotting library:
//! - [`heatmap`]: an attribution map over its image (diverging red / blue for signed maps,
//!   red for absolute or positive-only ones), upscaled, as an RGB image to save as PNG;
//! - [`Figure`]: such pictures in a grid with a title, the method's name over each column,
//!   a label beside each row, each map's scale under it and a colour legend;
//! - [`grid`]: pictures side by side with no text, one row per input;
//! - [`token_html`]: a self-contained HTML page colouring each token by its score, with the
//!   score in a tooltip and a legend;
//! - [`line_plot_svg`]: a self-contained SVG line plot of several [`Series`], for curves such
//!   as Sensitivity-n or deletion / insertion with one line per method.

use candle_core::Tensor;
pub use image::RgbImage;

pub mod figure;
pub mod generation;
pub mod plot_png;
pub mod text;
pub use figure::{Cell, Figure, Row};
pub use plot_png::line_plot_png;

/// The plot as `dir/stem.svg` and `dir/stem.png`.
pub fn save_line_plot(dir: &std::path::Path, stem: &str, title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Result<(), String> {
    let svg = line_plot_svg(title, x_label, y_label, series)?;
    let path = dir.join(format!("{stem}.svg"));
    std::fs::write(&path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let path = dir.join(format!("{stem}.png"));
    line_plot_png(title, x_label, y_label, series)?.save(&path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// What part of a signed attribution a heatmap shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Red positive, blue negative, white 0, scaled by the 99.5th percentile of |value|
    /// (larger values saturate).
    Signed,
    /// |value|, red, scaled the same way.
    Absolute,
    /// Positive values only, red; negatives are dropped.
    Positive,
}

/// One `(channels, h, w)` image (values in any range; drawn in grey, or in colour for three
/// channels, stretched to [0, 1]) with its attribution map (`(channels, h, w)` summed over
/// channels, or `(h, w)`) blended on top with opacity `alpha`, each pixel `scale`× larger.
pub fn heatmap(
    image: &Tensor,
    attribution: &Tensor,
    sign: Sign,
    alpha: f32,
    scale: u32,
) -> Result<RgbImage, String> {
    let err = |e: candle_core::Error| e.to_string();
    let (c, h, w) = image
        .dims3()
        .map_err(|_| format!("the image must be (channels, h, w), got {:?}", image.dims()))?;
    if c != 1 && c != 3 {
        return Err(format!("the image needs 1 or 3 channels, got {c}"));
    }
    let map = match attribution.rank() {
        3 => attribution.sum(0).map_err(err)?,
        _ => attribution.clone(),
    };
    if map.dims() != [h, w] {
        return Err(format!(
            "the attribution {:?} does not match the image {:?}",
            attribution.dims(),
            image.dims()
        ));
    }
    if !(0.0..=1.0).contains(&alpha) || scale == 0 {
        return Err(format!(
            "alpha must be in [0, 1] and scale ≥ 1, got {alpha} and {scale}"
        ));
    }
    let f32s = |t: &Tensor| -> Result<Vec<f32>, String> {
        t.to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1())
            .map_err(err)
    };
    let (px, a) = (f32s(image)?, f32s(&map)?);
    let (lo, hi) = px
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::MAX, f32::MIN), |(l, u), v| (l.min(*v), u.max(*v)));
    let a = shown(&a, sign);
    let top = percentile_scale(&a);
    let mut img = RgbImage::new(w as u32 * scale, h as u32 * scale);
    for y in 0..h {
        for x in 0..w {
            let grey = |k: usize| 255.0 * (px[k * h * w + y * w + x] - lo) / (hi - lo).max(1e-12);
            let base = if c == 3 {
                [grey(0), grey(1), grey(2)]
            } else {
                [grey(0); 3]
            };
            let t = (a[y * w + x] / top).clamp(-1.0, 1.0);
            let fade = 255.0 * (1.0 - t.abs());
            let heat = if t >= 0.0 {
                [255.0, fade, fade]
            } else {
                [fade, fade, 255.0]
            };
            let rgb = image::Rgb([0, 1, 2].map(|i| {
                ((1.0 - alpha) * base[i] + alpha * heat[i])
                    .round()
                    .clamp(0.0, 255.0) as u8
            }));
            for dy in 0..scale {
                for dx in 0..scale {
                    img.put_pixel(x as u32 * scale + dx, y as u32 * scale + dy, rgb);
                }
            }
        }
    }
    Ok(img)
}

/// The values a heatmap draws: non-finite ones as 0, then the part `sign` keeps.
fn shown(a: &[f32], sign: Sign) -> Vec<f32> {
    a.iter()
        .map(|v| if v.is_finite() { *v } else { 0.0 })
        .map(|v| match sign {
            Sign::Signed => v,
            Sign::Absolute => v.abs(),
            Sign::Positive => v.max(0.0),
        })
        .collect()
}

/// The value drawn at full colour: the 99.5th percentile of |value| rather than the maximum,
/// because on photos a handful of pixels can be 10× everything else and would leave the rest
/// of the map invisible.
fn percentile_scale(a: &[f32]) -> f32 {
    let mut mags: Vec<f32> = a.iter().map(|v| v.abs()).collect();
    mags.sort_by(f32::total_cmp);
    let rank = ((mags.len() as f64 * 0.995).ceil() as usize).clamp(1, mags.len().max(1)) - 1;
    mags.get(rank).copied().unwrap_or(0.0).max(1e-12)
}

/// The scale [`heatmap`] uses for `attribution` (summed over channels when it has three
/// dimensions): the value drawn at full red (or blue).
pub fn map_scale(attribution: &Tensor, sign: Sign) -> Result<f32, String> {
    let err = |e: candle_core::Error| e.to_string();
    let map = match attribution.rank() {
        3 => attribution.sum(0).map_err(err)?,
        _ => attribution.clone(),
    };
    let v: Vec<f32> = map
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(err)?;
    Ok(percentile_scale(&shown(&v, sign)))
}

/// Pictures laid out in rows (every picture of a row the same height), `pad` white pixels
/// between them.
pub fn grid(rows: &[Vec<RgbImage>], pad: u32) -> RgbImage {
    let width = rows
        .iter()
        .map(|r| r.iter().map(|i| i.width() + pad).sum::<u32>())
        .max()
        .unwrap_or(0);
    let height: u32 = rows
        .iter()
        .map(|r| r.iter().map(|i| i.height()).max().unwrap_or(0) + pad)
        .sum();
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
    let v = if v.is_finite() {
        v.clamp(-1.0, 1.0)
    } else {
        0.0
    };
    let fade = |a: f64| (255.0 * (1.0 - a.abs())).round() as u8;
    if v >= 0.0 {
        format!("rgb(255,{0},{0})", fade(v))
    } else {
        format!("rgb({0},{0},255)", fade(v))
    }
}

/// One `<section>` per row: `(caption, tokens, scores)`; tokens and scores must pair up.
pub fn token_html(title: &str, rows: &[(String, Vec<String>, Vec<f64>)]) -> Result<String, String> {
    let mut body = String::new();
    for (caption, tokens, scores) in rows {
        if tokens.len() != scores.len() {
            return Err(format!(
                "{caption}: {} tokens but {} scores",
                tokens.len(),
                scores.len()
            ));
        }
        let scale = scores
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, v| m.max(v.abs()))
            .max(1e-12);
        body.push_str(&format!("<section><h2>{}</h2><p>", escape(caption)));
        for (t, s) in tokens.iter().zip(scores) {
            body.push_str(&format!(
                "<span class=\"tok\" style=\"background:{}\" title=\"{:+.4}\">{}</span> ",
                colour(s / scale),
                s,
                escape(t)
            ));
        }
        body.push_str(&format!(
            "</p><p class=\"scale\">largest |score| {scale:.4}</p></section>\n"
        ));
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

/// One line of a plot: `y[i]` at `x[i]`, drawn in the given order.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// Positions along the x axis (any order; the line follows the given order).
    pub x: Vec<f64>,
    /// Values, one per `x`.
    pub y: Vec<f64>,
    /// Error bars: `y ± error[i]` at each point (e.g. a standard deviation over seeds).
    pub error: Option<Vec<f64>>,
}

impl Series {
    /// A series from its name and paired `x`, `y` values.
    pub fn new(name: impl Into<String>, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self {
            name: name.into(),
            x,
            y,
            error: None,
        }
    }

    /// The same series with an error bar `y ± error[i]` at each point.
    pub fn with_error(mut self, error: Vec<f64>) -> Self {
        self.error = Some(error);
        self
    }

    /// Each point's error bar `(x, y − e, y + e)`; none without errors.
    fn bars(&self) -> Vec<(f64, f64, f64)> {
        let e = self.error.as_deref().unwrap_or(&[]);
        self.x.iter().zip(&self.y).zip(e).map(|((x, y), e)| (*x, y - e, y + e)).collect()
    }
}

/// Tableau 10 (matplotlib's `tab10`): distinct hues that stay readable on white; series past
/// the tenth reuse them dashed.
const PALETTE: [&str; 10] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];
const DASHES: [&str; 3] = ["", "6 3", "2 2"];
const SVG_W: f64 = 640.0;
const SVG_H: f64 = 400.0;
/// Series with at most this many points also get a circle per point, so sparse curves show
/// where they were measured.
const MARKER_MAX_POINTS: usize = 30;

/// [`escape`] plus replacing characters XML 1.0 forbids (most control characters), which would
/// make the whole SVG unreadable.
fn xml_text(s: &str) -> String {
    let ok = |c: char| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}');
    escape(
        &s.chars()
            .map(|c| if ok(c) { c } else { '\u{FFFD}' })
            .collect::<String>(),
    )
}

/// Smallest and largest of finite values (callers check finiteness first).
fn min_max<'a>(v: impl Iterator<Item = &'a f64>) -> (f64, f64) {
    v.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, u), x| {
        (l.min(*x), u.max(*x))
    })
}

/// The drawn range for data in `[lo, hi]`, widened by `pad` × span on each side; a (near)
/// constant range gets a span of its own so a flat line or a single point still plots.
fn axis_range(lo: f64, hi: f64, pad: f64, axis: &str) -> Result<(f64, f64), String> {
    let span = hi - lo;
    if !span.is_finite() {
        return Err(format!(
            "the {axis} values span [{lo:e}, {hi:e}], too wide to plot"
        ));
    }
    // Spans lost in rounding (or in subnormals) give no usable ticks: treat them as constant.
    if span <= 1e-9 * lo.abs().max(hi.abs()) || span < 1e-290 {
        let mid = lo + span / 2.0;
        let half = if mid.abs() < 1e-290 {
            1.0
        } else {
            mid.abs() * 0.1
        };
        return Ok((mid - half, mid + half));
    }
    let (a, b) = (lo - pad * span, hi + pad * span);
    if !(a.is_finite() && b.is_finite()) {
        return Err(format!(
            "the {axis} values span [{lo:e}, {hi:e}], too wide to plot"
        ));
    }
    Ok((a, b))
}

/// About five tick values inside `[lo, hi]`, on a step of 1, 2 or 5 × 10^k, with compact
/// labels.
fn nice_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let k0 = ((hi - lo) / 5.0).log10().floor() as i32;
    let mut best: Option<(i64, f64, i32, f64, f64)> = None; // (|count - 5|, step, k, first, last)
    for k in k0 - 1..=k0 + 1 {
        for m in [1.0, 2.0, 5.0] {
            let step = m * 10f64.powi(k);
            let (first, last) = ((lo / step).ceil(), (hi / step).floor());
            if !(step > 0.0 && step.is_finite() && first.is_finite() && last.is_finite()) {
                continue;
            }
            let score = ((last - first + 1.0) - 5.0).abs() as i64;
            // Ties go to the smaller step (tried first): 7 ticks read better than 3.
            if best.is_none_or(|b| score < b.0) {
                best = Some((score, step, k, first, last));
            }
        }
    }
    let Some((_, step, k, first, last)) = best else {
        return Vec::new();
    };
    let top = (first * step).abs().max((last * step).abs());
    let sci = k < -4 || top >= 1e6;
    let mut ticks = Vec::new();
    let mut i = first;
    while i <= last && ticks.len() < 20 {
        let v = i * step;
        ticks.push((
            v,
            if i == 0.0 {
                "0".to_string()
            } else {
                tick_label(v, k, sci)
            },
        ));
        i += 1.0;
    }
    ticks
}

/// `v` (a multiple of 10^k) with just the digits the step needs: fixed notation without
/// trailing zeros, or scientific (`2.5e-6`) for very small or large values.
fn tick_label(v: f64, k: i32, sci: bool) -> String {
    let trim = |s: String| {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    };
    if sci {
        let e = (v.abs().log10() + 1e-9).floor() as i32;
        let s = format!("{:.*e}", (e - k).max(0) as usize, v);
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim(mantissa.to_string())),
            None => s,
        }
    } else {
        trim(format!("{:.*}", (-k).max(0) as usize, v))
    }
}

/// Checks one series, naming it and the first offending value in the error.
fn check_series(i: usize, s: &Series) -> Result<(), String> {
    let who = format!("series {i} ({:?})", s.name);
    if s.x.len() != s.y.len() {
        return Err(format!(
            "{who}: x has {} values but y has {}; they must pair up",
            s.x.len(),
            s.y.len()
        ));
    }
    if s.x.is_empty() {
        return Err(format!(
            "{who}: no points; each series needs at least one (x, y)"
        ));
    }
    for (axis, v) in [("x", &s.x), ("y", &s.y)] {
        if let Some((j, bad)) = v.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(format!(
                "{who}: {axis}[{j}] is {bad}; every value must be finite"
            ));
        }
    }
    if let Some(e) = &s.error {
        if e.len() != s.y.len() {
            return Err(format!("{who}: {} error bars for {} points; one per point", e.len(), s.y.len()));
        }
        if let Some((j, bad)) = e.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v >= 0.0)) {
            return Err(format!("{who}: error[{j}] is {bad}; error bars must be finite and ≥ 0"));
        }
    }
    Ok(())
}

/// The drawn x and y ranges of a plot of `series` (the data; y plus 5 % each side), after
/// checking that there is a series and every one is finite and paired.
fn plot_ranges(who: &str, series: &[Series]) -> Result<((f64, f64), (f64, f64)), String> {
    if series.is_empty() {
        return Err(format!("{who} needs at least one series"));
    }
    for (i, s) in series.iter().enumerate() {
        check_series(i, s)?;
    }
    let (x_lo, x_hi) = min_max(series.iter().flat_map(|s| &s.x));
    let ends: Vec<f64> = series.iter().flat_map(|s| s.bars()).flat_map(|(_, lo, hi)| [lo, hi]).collect();
    let (y_lo, y_hi) = min_max(series.iter().flat_map(|s| &s.y).chain(&ends));
    Ok((axis_range(x_lo, x_hi, 0.0, "x")?, axis_range(y_lo, y_hi, 0.05, "y")?))
}

/// A self-contained SVG (640 × 400 viewBox, no external fonts or scripts) of several curves:
/// title, axes with about five 1-2-5 ticks each and grid lines, axis labels, and a legend with
/// one Tableau-10 colour per series. The x axis spans the data, the y axis the data plus 5 %
/// on each side. Lines are `<polyline>`s (one per series, in its own `<g class="series">`),
/// with a circle per point when a series has at most 30 points, and error bars where a
/// series has them (the y axis then spans them too). Text is XML-escaped; the
/// output depends only on the input.
///
/// Errors (never panics) on no series, or a series with no points, x and y of different
/// lengths, or a NaN / infinite value.
pub fn line_plot_svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<String, String> {
    let ((x0, x1), (y0, y1)) = plot_ranges("line_plot_svg", series)?;

    // Room on the right for the legend, sized by the longest name (about 7 px per character).
    let longest = series
        .iter()
        .map(|s| s.name.chars().count())
        .max()
        .unwrap_or(0) as f64;
    let (left, top, bottom) = (76.0, 40.0, 48.0);
    let right = (40.0 + 7.0 * longest).clamp(110.0, 260.0);
    let (pw, ph) = (SVG_W - left - right, SVG_H - top - bottom);
    let px = |x: f64| left + (x - x0) / (x1 - x0) * pw;
    let py = |y: f64| top + ph - (y - y0) / (y1 - y0) * ph;

    let mut out = String::new();
    out.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {SVG_W} {SVG_H}\" width=\"{SVG_W}\" height=\"{SVG_H}\" font-family=\"sans-serif\" font-size=\"12\">\n<title>{t}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#fff\"/>\n<text class=\"title\" x=\"{:.2}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{t}</text>\n",
        left + pw / 2.0,
        t = xml_text(title),
    ));

    // Grid lines and tick labels, then the frame over them.
    let b = top + ph;
    out.push_str("<g class=\"x-ticks\" text-anchor=\"middle\">\n");
    for (v, label) in nice_ticks(x0, x1) {
        let x = px(v);
        out.push_str(&format!("<line x1=\"{x:.2}\" y1=\"{top:.2}\" x2=\"{x:.2}\" y2=\"{b:.2}\" stroke=\"#e5e5e5\"/><line x1=\"{x:.2}\" y1=\"{b:.2}\" x2=\"{x:.2}\" y2=\"{:.2}\" stroke=\"#333\"/><text x=\"{x:.2}\" y=\"{:.2}\">{label}</text>\n", b + 5.0, b + 18.0));
    }
    out.push_str("</g>\n<g class=\"y-ticks\" text-anchor=\"end\">\n");
    for (v, label) in nice_ticks(y0, y1) {
        let y = py(v);
        out.push_str(&format!("<line x1=\"{left:.2}\" y1=\"{y:.2}\" x2=\"{:.2}\" y2=\"{y:.2}\" stroke=\"#e5e5e5\"/><line x1=\"{:.2}\" y1=\"{y:.2}\" x2=\"{left:.2}\" y2=\"{y:.2}\" stroke=\"#333\"/><text x=\"{:.2}\" y=\"{y:.2}\" dy=\"0.32em\">{label}</text>\n", left + pw, left - 5.0, left - 8.0));
    }
    out.push_str(&format!(
        "</g>\n<rect class=\"plot-area\" x=\"{left:.2}\" y=\"{top:.2}\" width=\"{pw:.2}\" height=\"{ph:.2}\" fill=\"none\" stroke=\"#333\"/>\n<text class=\"x-label\" x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>\n<text class=\"y-label\" transform=\"rotate(-90)\" x=\"{:.2}\" y=\"18\" text-anchor=\"middle\">{}</text>\n",
        left + pw / 2.0,
        SVG_H - 10.0,
        xml_text(x_label),
        -(top + ph / 2.0),
        xml_text(y_label),
    ));

    // One group per series: its line, then its markers.
    let style = |i: usize| {
        let dash = DASHES[(i / PALETTE.len()) % DASHES.len()];
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(" stroke-dasharray=\"{dash}\"")
        };
        (PALETTE[i % PALETTE.len()], dash)
    };
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = style(i);
        let points: Vec<String> =
            s.x.iter()
                .zip(&s.y)
                .map(|(x, y)| format!("{:.2},{:.2}", px(*x), py(*y)))
                .collect();
        out.push_str(&format!("<g class=\"series\" stroke=\"{colour}\" fill=\"{colour}\">\n<polyline fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\"{dash} points=\"{}\"/>\n", points.join(" ")));
        if s.x.len() <= MARKER_MAX_POINTS {
            for (x, y) in s.x.iter().zip(&s.y) {
                out.push_str(&format!(
                    "<circle cx=\"{:.2}\" cy=\"{:.2}\" r=\"2.5\" stroke=\"none\"/>\n",
                    px(*x),
                    py(*y)
                ));
            }
        }
        // Error bars: a vertical line with 3 px caps at each point.
        for (x, lo, hi) in s.bars() {
            let (x, a, b) = (px(x), py(lo), py(hi));
            out.push_str(&format!(
                "<path class=\"error-bar\" fill=\"none\" stroke-width=\"1\" d=\"M{x:.2} {a:.2}V{b:.2}M{:.2} {a:.2}H{:.2}M{:.2} {b:.2}H{:.2}\"/>\n",
                x - 3.0, x + 3.0, x - 3.0, x + 3.0
            ));
        }
        out.push_str("</g>\n");
    }

    out.push_str("<g class=\"legend\">\n");
    let lx = left + pw + 12.0;
    for (i, s) in series.iter().enumerate() {
        let (colour, dash) = style(i);
        let y = top + 10.0 + 18.0 * i as f64;
        out.push_str(&format!(
            "<line x1=\"{lx:.2}\" y1=\"{y:.2}\" x2=\"{:.2}\" y2=\"{y:.2}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/><text x=\"{:.2}\" y=\"{y:.2}\" dy=\"0.32em\">{}</text>\n",
            lx + 20.0,
            lx + 26.0,
            xml_text(&s.name),
        ));
    }
    out.push_str("</g>\n</svg>\n");
    Ok(out)
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
        assert_eq!(
            back.get_pixel(0, 3).0,
            [255, 255, 255],
            "no attribution at alpha 1: white"
        );
        let faint = heatmap(&img, &attr, Sign::Signed, 0.0, 1).unwrap();
        assert_eq!(
            faint.get_pixel(1, 0).0,
            [128, 128, 128],
            "alpha 0 shows the image"
        );
        let pos = heatmap(&img, &attr, Sign::Positive, 1.0, 1).unwrap();
        assert_eq!(pos.get_pixel(1, 0).0, [255, 255, 255], "negatives dropped");
        let g = grid(&[vec![pic.clone(), pic], vec![faint]], 2);
        assert_eq!((g.width(), g.height()), (16, 12));
        assert!(heatmap(&img, &attr.narrow(2, 0, 1).unwrap(), Sign::Signed, 0.5, 1).is_err());
    }

    #[test]
    fn page_has_every_token_escaped_and_coloured() {
        let rows = vec![(
            "IG".to_string(),
            vec!["a".into(), "<b>".into(), "film".into()],
            vec![0.5, -1.0, 0.0],
        )];
        let html = token_html("x & y", &rows).unwrap();
        for needle in [
            ">a</span>",
            ">&lt;b&gt;</span>",
            ">film</span>",
            "x &amp; y",
            "legend",
            "rgb(0,0,255)",
            "rgb(255,128,128)",
            "title=\"+0.0000\"",
        ] {
            assert!(html.contains(needle), "missing {needle:?} in {html}");
        }
        assert!(token_html("t", &[("r".into(), vec!["a".into()], vec![])]).is_err());
    }
}
