//! The report files every paper writes.

use anyhow::Result;
use candle_core::Tensor;
use candle_explain::viz::{Cell, Figure, Row, Sign};

/// `results.json`, `report.md` and `report.html` (its tables as HTML; each of `figures`,
/// `(alt, file)`, the markdown's `![alt](file)` shown as an image) in `dir`; prints the
/// report and what was written.
pub(crate) fn write_report(
    dir: &std::path::Path,
    json: &serde_json::Value,
    md: &str,
    figures: &[(&str, &str)],
) -> Result<()> {
    crate::write_file(&dir.join("results.json"), serde_json::to_string_pretty(json)?)?;
    crate::write_file(&dir.join("report.md"), md)?;
    let mut html = markdown_tables_html(md);
    let mut written = "report.md, report.html, results.json".to_string();
    for (alt, file) in figures {
        html = html.replace(
            &format!("![{alt}]({file})"),
            &format!("<img src=\"{file}\" alt=\"{alt}\">"),
        );
        written.push_str(&format!(", {file}"));
    }
    crate::write_file(&dir.join("report.html"), html)?;
    println!("{md}\nwrote {}/{{{written}}}", dir.display());
    Ok(())
}

/// The report's headings, paragraphs and pipe tables as one HTML page.
fn markdown_tables_html(md: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::from("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>reproduce</title><style>body{font-family:sans-serif;max-width:70em;margin:2em auto} td,th{border:1px solid #ccc;padding:0.2em 0.5em} table{border-collapse:collapse}</style></head><body>\n");
    let mut in_table = false;
    for line in md.lines() {
        if let Some(row) = line.strip_prefix('|') {
            if line.starts_with("|---") {
                continue;
            }
            if !in_table {
                html.push_str("<table>\n");
                in_table = true;
            }
            let cells: Vec<String> = row
                .trim_end_matches('|')
                .split('|')
                .map(|c| format!("<td>{}</td>", esc(c.trim())))
                .collect();
            html.push_str(&format!("<tr>{}</tr>\n", cells.concat()));
            continue;
        }
        if in_table {
            html.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("## ") {
            html.push_str(&format!("<h2>{}</h2>\n", esc(h)));
        } else if let Some(h) = line.strip_prefix("# ") {
            html.push_str(&format!("<h1>{}</h1>\n", esc(h)));
        } else if !line.trim().is_empty() {
            html.push_str(&format!("<p>{}</p>\n", esc(line)));
        }
    }
    if in_table {
        html.push_str("</table>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// A PNG grid: one row per example of `x` (`(B, C, H, W)`, shown as it is), the input then
/// each method's |attribution| in a column named after it, with the figure's colour scale.
pub(crate) fn heatmaps(x: &Tensor, maps: &[Tensor], names: &[&str], title: &str, path: &std::path::Path) -> Result<()> {
    let scale = if x.dim(3)? > 64 { 1 } else { 3 };
    let mut rows = vec![];
    for r in 0..x.dim(0)? {
        let img = x.get(r)?;
        let mut cells = vec![Cell::input(&img, scale, "").map_err(anyhow::Error::msg)?];
        for m in maps {
            cells.push(Cell::attribution(&img, &m.get(r)?, Sign::Absolute, 1.0, scale).map_err(anyhow::Error::msg)?);
        }
        rows.push(Row { label: format!("example {r}"), cells });
    }
    let mut columns = vec!["input".to_string()];
    columns.extend(names.iter().map(|n| n.to_string()));
    Figure { title: title.into(), columns, rows, sign: Sign::Absolute, notes: vec![] }.save(path).map_err(anyhow::Error::msg)
}
