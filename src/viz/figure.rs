//! A labelled grid of heatmaps: a title, the method's name over each column, what each row
//! shows (label, prediction) beside it, each map's scale under it and a colour legend, so
//! that the picture says what it shows without the code that made it.

use super::text::{self, GLYPH, LINE};
use super::{heatmap, map_scale, Sign};
use candle_core::Tensor;
use image::{Rgb, RgbImage};

const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([20, 20, 20]);
const GREY: Rgb<u8> = Rgb([90, 90, 90]);
const MARGIN: u32 = 8;
const PAD: u32 = 4;
/// Row labels wrap at this many characters.
const LABEL_CHARS: usize = 18;

/// One picture of a grid and the line of small text under it.
#[derive(Debug, Clone)]
pub struct Cell {
    pub image: RgbImage,
    pub caption: String,
}

impl Cell {
    /// The input itself (no attribution drawn), captioned e.g. "input".
    pub fn input(image: &Tensor, scale: u32, caption: impl Into<String>) -> Result<Self, String> {
        let blank = image.zeros_like().map_err(|e| e.to_string())?;
        Ok(Self {
            image: heatmap(image, &blank, Sign::Signed, 0.0, scale)?,
            caption: caption.into(),
        })
    }

    /// A [`heatmap`] of `attribution` over `image`, captioned with the map's scale (the value
    /// drawn at full colour), which the legend refers to.
    pub fn attribution(
        image: &Tensor,
        attribution: &Tensor,
        sign: Sign,
        alpha: f32,
        scale: u32,
    ) -> Result<Self, String> {
        let s = map_scale(attribution, sign)?;
        let caption = match sign {
            Sign::Signed => format!("±{}", short(s)),
            Sign::Absolute => format!("max {}", short(s)),
            Sign::Positive => format!("+max {}", short(s)),
        };
        Ok(Self {
            image: heatmap(image, attribution, sign, alpha, scale)?,
            caption,
        })
    }
}

/// A number in at most 8 characters.
fn short(v: f32) -> String {
    if v != 0.0 && !(1e-2..1e4).contains(&v.abs()) {
        format!("{v:.1e}")
    } else {
        format!("{v:.3}")
    }
}

/// The rows of a figure: `label` is drawn at the left of its cells.
#[derive(Debug, Clone)]
pub struct Row {
    pub label: String,
    pub cells: Vec<Cell>,
}

/// Columns named over the top, rows labelled at the left, a title and a legend for `sign`.
#[derive(Debug, Clone)]
pub struct Figure {
    pub title: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    /// Which colour scale the heatmaps use (the legend drawn under the grid).
    pub sign: Sign,
    /// More lines under the legend (e.g. which columns differ from it).
    pub notes: Vec<String>,
}

impl Figure {
    /// Draws the figure. Every row needs one cell per column.
    pub fn render(&self) -> Result<RgbImage, String> {
        if self.rows.is_empty() || self.columns.is_empty() {
            return Err("a figure needs at least one row and one column".into());
        }
        for (i, r) in self.rows.iter().enumerate() {
            if r.cells.len() != self.columns.len() {
                return Err(format!(
                    "row {i} ({:?}) has {} pictures for {} columns",
                    r.label,
                    r.cells.len(),
                    self.columns.len()
                ));
            }
        }
        let col_w: Vec<u32> = (0..self.columns.len())
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.cells[c].image.width())
                    .max()
                    .unwrap_or(0)
                    .max(6 * GLYPH)
            })
            .collect();
        let titles: Vec<Vec<String>> = self
            .columns
            .iter()
            .zip(&col_w)
            .map(|(t, w)| text::wrap(t, (*w / GLYPH) as usize))
            .collect();
        let header_h = titles.iter().map(Vec::len).max().unwrap_or(1) as u32 * LINE;
        let labels: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| text::wrap(&r.label, LABEL_CHARS))
            .collect();
        let label_w = labels
            .iter()
            .flatten()
            .map(|l| text::width(l, 1))
            .max()
            .unwrap_or(0)
            + PAD;
        let row_h: Vec<u32> = self
            .rows
            .iter()
            .zip(&labels)
            .map(|(r, l)| {
                let pics = r.cells.iter().map(|c| c.image.height()).max().unwrap_or(0) + LINE;
                pics.max(l.len() as u32 * LINE)
            })
            .collect();
        let grid_w = label_w + col_w.iter().map(|w| w + PAD).sum::<u32>();
        let width = (2 * MARGIN + grid_w).max(2 * MARGIN + LEGEND_W);
        let title = text::wrap(&self.title, ((width - 2 * MARGIN) / (2 * GLYPH)) as usize);
        let title_h = title.len() as u32 * 2 * LINE + PAD;
        // The legend's lines wrap to the figure's width.
        let chars = ((width - 2 * MARGIN) / GLYPH).max(24) as usize;
        let legend: Vec<String> = legend_lines(self.sign)
            .iter()
            .chain(&self.notes)
            .flat_map(|l| text::wrap(l, chars))
            .collect();
        let legend_h = BAR_H + LINE + legend.len() as u32 * LINE + PAD;
        let height =
            2 * MARGIN + title_h + header_h + row_h.iter().map(|h| h + PAD).sum::<u32>() + legend_h;
        let mut img = RgbImage::from_pixel(width, height, WHITE);

        let mut y = MARGIN;
        for line in &title {
            text::draw(&mut img, MARGIN, y, line, 2, INK);
            y += 2 * LINE;
        }
        y += PAD;
        let mut x = MARGIN + label_w;
        for (lines, w) in titles.iter().zip(&col_w) {
            for (k, line) in lines.iter().enumerate() {
                let lx = x + (w - text::width(line, 1).min(*w)) / 2;
                text::draw(&mut img, lx, y + k as u32 * LINE, line, 1, INK);
            }
            x += w + PAD;
        }
        y += header_h;
        for ((row, lines), h) in self.rows.iter().zip(&labels).zip(&row_h) {
            for (k, line) in lines.iter().enumerate() {
                text::draw(&mut img, MARGIN, y + k as u32 * LINE, line, 1, INK);
            }
            let mut x = MARGIN + label_w;
            for (cell, w) in row.cells.iter().zip(&col_w) {
                image::imageops::replace(&mut img, &cell.image, x as i64, y as i64);
                let max_chars = (*w / GLYPH) as usize;
                let caption: String = cell.caption.chars().take(max_chars).collect();
                let cx = x + (w - text::width(&caption, 1).min(*w)) / 2;
                text::draw(&mut img, cx, y + cell.image.height() + 1, &caption, 1, GREY);
                x += w + PAD;
            }
            y += h + PAD;
        }
        draw_legend(&mut img, MARGIN, y, self.sign, &legend);
        Ok(img)
    }

    /// Renders and saves as PNG.
    pub fn save(&self, path: &std::path::Path) -> Result<(), String> {
        self.render()?
            .save(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

const LEGEND_W: u32 = 256;
const BAR_H: u32 = 12;

/// What the colours mean, under the bar.
fn legend_lines(sign: Sign) -> Vec<String> {
    let scale = "each map is scaled to its own value s (under it): the 99.5th percentile of |value|; larger values saturate".to_string();
    let mut lines: Vec<String> = match sign {
        Sign::Signed => vec![
            "red: positive attribution (raises the explained output)".to_string(),
            "blue: negative attribution (lowers it); white: 0".to_string(),
        ],
        Sign::Absolute => vec!["red: |attribution|, white: 0".to_string()],
        Sign::Positive => vec!["red: positive attribution; negatives not drawn".to_string()],
    };
    lines.push(scale);
    lines
}

/// The colour bar with its ticks, then the explanation lines.
fn draw_legend(img: &mut RgbImage, x: u32, y: u32, sign: Sign, lines: &[String]) {
    let (lo, ticks): (f32, [&str; 3]) = match sign {
        Sign::Signed => (-1.0, ["-s", "0", "+s"]),
        Sign::Absolute | Sign::Positive => (0.0, ["0", "s/2", "s"]),
    };
    for i in 0..LEGEND_W {
        let t = lo + (1.0 - lo) * i as f32 / (LEGEND_W - 1) as f32;
        let fade = (255.0 * (1.0 - t.abs())).round() as u8;
        let c = if t >= 0.0 {
            Rgb([255, fade, fade])
        } else {
            Rgb([fade, fade, 255])
        };
        for dy in 0..BAR_H {
            img.put_pixel(x + i, y + dy, c);
        }
    }
    let ty = y + BAR_H + 1;
    text::draw(img, x, ty, ticks[0], 1, INK);
    let mid = x + (LEGEND_W - text::width(ticks[1], 1)) / 2;
    text::draw(img, mid, ty, ticks[1], 1, INK);
    text::draw(
        img,
        x + LEGEND_W - text::width(ticks[2], 1),
        ty,
        ticks[2],
        1,
        INK,
    );
    for (k, line) in lines.iter().enumerate() {
        text::draw(img, x, ty + LINE + k as u32 * LINE, line, 1, GREY);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dark_in(img: &RgbImage, x0: u32, x1: u32, y0: u32, y1: u32) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| img.get_pixel(x, y).0.iter().all(|&v| v < 128))
            .count()
    }

    /// Titles are drawn over each column, labels beside each row, and the legend's bar runs
    /// from blue through white to red; a row with a missing picture is an error.
    #[test]
    fn names_columns_rows_and_the_colour_scale() {
        let dev = candle_core::Device::Cpu;
        let x = Tensor::ones((1, 8, 8), candle_core::DType::F32, &dev).unwrap();
        let a = Tensor::arange(-32f32, 32., &dev)
            .unwrap()
            .reshape((1, 8, 8))
            .unwrap();
        let cells = vec![
            Cell::input(&x, 8, "input").unwrap(),
            Cell::attribution(&x, &a, Sign::Signed, 1.0, 8).unwrap(),
        ];
        assert!(cells[1].caption.starts_with('±'), "{}", cells[1].caption);
        let fig = Figure {
            title: "T".into(),
            columns: vec!["input".into(), "saliency".into()],
            rows: vec![Row {
                label: "label 3".into(),
                cells: cells.clone(),
            }],
            sign: Sign::Signed,
            notes: vec![],
        };
        let img = fig.render().unwrap();
        // Header band: between the title (2 lines of 10 px at scale 2 + pad) and the pictures.
        let top = MARGIN + 2 * LINE + PAD;
        let label_w = text::width("label 3", 1) + PAD;
        let c0 = MARGIN + label_w;
        assert!(
            dark_in(&img, c0, c0 + 64, top, top + LINE) > 10,
            "column 0 title"
        );
        assert!(
            dark_in(&img, c0 + 64 + PAD, c0 + 128 + PAD, top, top + LINE) > 10,
            "column 1 title"
        );
        assert!(
            dark_in(&img, MARGIN, MARGIN + label_w, top + LINE, top + 2 * LINE) > 10,
            "row label"
        );
        // The bar: find its first row by its left end (pure blue) and check the right end.
        let bar_y = (0..img.height())
            .find(|&y| img.get_pixel(MARGIN, y).0 == [0, 0, 255])
            .expect("a legend bar with a blue end");
        assert_eq!(img.get_pixel(MARGIN + LEGEND_W - 1, bar_y).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(MARGIN + LEGEND_W / 2, bar_y).0[1], 254);
        let bad = Figure {
            rows: vec![Row {
                label: "x".into(),
                cells: cells[..1].to_vec(),
            }],
            ..fig
        };
        assert!(bad
            .render()
            .unwrap_err()
            .contains("1 pictures for 2 columns"));
    }
}
