//! The page of an explained generation: the text with every generated token selectable, the
//! tokens before it coloured by their attribution to it, and the whole source × target
//! heatmap, each with its legend. Self-contained HTML (inline data, a few lines of script).

use super::{colour, escape};

/// What the page shows.
pub struct GenerationPage<'a> {
    pub title: &'a str,
    /// How to read the numbers (method, score, baseline).
    pub note: &'a str,
    /// Every token of the sequence, as text: the prompt's then the generated ones.
    pub tokens: &'a [String],
    pub prompt_len: usize,
    /// `matrix[k][i]`: source `i`'s attribution to generated token `k` (`tokens.len() − 1`
    /// sources: the last token is never a source).
    pub matrix: &'a [Vec<f64>],
    /// Each generated token's explained score (its log-probability, say).
    pub scores: &'a [f64],
}

fn max_abs(v: &[f64]) -> f64 {
    v.iter()
        .filter(|x| x.is_finite())
        .fold(0f64, |m, x| m.max(x.abs()))
        .max(1e-12)
}

/// A token for display: whitespace made visible where it is all there is.
fn shown(t: &str) -> String {
    let t = t.replace('\n', "⏎");
    if t.trim().is_empty() && !t.is_empty() {
        t.replace(' ', "␣")
    } else {
        t
    }
}

impl GenerationPage<'_> {
    pub fn render(&self) -> Result<String, String> {
        let (n, p) = (self.tokens.len(), self.prompt_len);
        let t = n.checked_sub(p).filter(|t| *t > 0).ok_or("no generated tokens")?;
        if self.matrix.len() != t || self.scores.len() != t {
            return Err(format!(
                "{t} generated tokens but {} matrix rows and {} scores",
                self.matrix.len(),
                self.scores.len()
            ));
        }
        if let Some(r) = self.matrix.iter().find(|r| r.len() != n - 1) {
            return Err(format!("a matrix row has {} sources, expected {}", r.len(), n - 1));
        }
        // The text, every token in a span; generated ones are buttons.
        let mut text = String::new();
        for (i, tok) in self.tokens.iter().enumerate() {
            let class = if i < p { "tok src" } else { "tok gen" };
            text.push_str(&format!(
                "<span class=\"{class}\" id=\"t{i}\" data-i=\"{i}\">{}</span>",
                escape(&shown(tok))
            ));
        }
        // The heatmap: one row per generated token, one column per source, each row scaled
        // by its largest |value|; positions at or after the target are blank.
        let mut table = String::from("<table class=\"heat\"><tr><th></th>");
        for tok in &self.tokens[..n - 1] {
            table.push_str(&format!("<th class=\"col\"><div>{}</div></th>", escape(&shown(tok))));
        }
        table.push_str("<th>score</th><th>row max</th></tr>\n");
        for (k, row) in self.matrix.iter().enumerate() {
            let scale = max_abs(row);
            table.push_str(&format!(
                "<tr><th class=\"row\" data-k=\"{k}\">{}</th>",
                escape(&shown(&self.tokens[p + k]))
            ));
            for (i, v) in row.iter().enumerate() {
                if i >= p + k {
                    table.push_str("<td class=\"na\"></td>");
                } else {
                    table.push_str(&format!(
                        "<td style=\"background:{}\" title=\"{} → {}: {v:+.4}\"></td>",
                        colour(v / scale),
                        escape(&shown(&self.tokens[i])),
                        escape(&shown(&self.tokens[p + k]))
                    ));
                }
            }
            table.push_str(&format!(
                "<td class=\"num\">{:.3}</td><td class=\"num\">{scale:.3}</td></tr>\n",
                self.scores[k]
            ));
        }
        table.push_str("</table>");
        let data = serde_json::json!({"prompt_len": p, "matrix": self.matrix, "scores": self.scores})
            .to_string()
            .replace("</", "<\\/");
        let bar: String = (0..=20)
            .map(|j| {
                let v = -1.0 + j as f64 / 10.0;
                format!("<span style=\"background:{}\"></span>", colour(v))
            })
            .collect();
        Ok(format!(
            r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:sans-serif;max-width:75em;margin:2em auto;padding:0 1em}}
.text{{font-family:monospace;font-size:1.05em;line-height:2.2;white-space:pre-wrap;border:1px solid #ccc;padding:0.8em}}
.tok{{padding:0.15em 0;border-radius:0.2em}} .gen{{cursor:pointer;border-bottom:2px solid #999}}
.gen.sel{{outline:2px solid #000}} .legend{{display:flex;align-items:center;gap:0.5em;margin:0.6em 0}}
.bar{{display:inline-flex;flex:none}} .bar span{{display:inline-block;width:0.9em;height:1em}} .note{{color:#444}}
table.heat{{border-collapse:collapse;font-family:monospace;font-size:0.8em}}
.heat td{{width:1.1em;height:1.1em;border:1px solid #eee;padding:0}} .heat td.na{{background:#f4f4f4}}
.heat td.num{{width:auto;padding:0 0.4em;text-align:right;border:none}}
.heat th.col div{{writing-mode:vertical-rl;transform:rotate(180deg);white-space:nowrap;max-height:8em;overflow:hidden}}
.heat th.row{{text-align:right;padding-right:0.4em;white-space:nowrap;cursor:pointer}}
</style></head><body>
<h1>{title}</h1>
<p class="note">{note}</p>
<div class="legend"><span>−max</span><span class="bar">{bar}</span><span>+max</span>
<span class="note">red: the token raised the score of the selected token; blue: lowered it. Colours are scaled by the selected row's largest |value|; hover for values.</span></div>
<h2>Text</h2>
<p class="note">Prompt, then the generated tokens (underlined). Click a generated token to colour what came before it by its attribution to that token; <b id="what"></b></p>
<div class="text" id="text">{text}</div>
<h2>Source × target</h2>
<p class="note">One row per generated token (its score on the right), one column per earlier token; grey: not visible to that token.</p>
{table}
<script>
const D = {data};
function show(k) {{
  const row = D.matrix[k];
  let m = 1e-12; for (let i = 0; i < D.prompt_len + k; i++) m = Math.max(m, Math.abs(row[i]));
  document.querySelectorAll('.tok').forEach(el => {{
    const i = +el.dataset.i;
    el.classList.remove('sel');
    if (i < D.prompt_len + k) {{
      const v = Math.max(-1, Math.min(1, row[i] / m)), f = Math.round(255 * (1 - Math.abs(v)));
      el.style.background = v >= 0 ? `rgb(255,${{f}},${{f}})` : `rgb(${{f}},${{f}},255)`;
      el.title = row[i].toFixed(4);
    }} else {{ el.style.background = ''; el.title = ''; }}
  }});
  document.getElementById('t' + (D.prompt_len + k)).classList.add('sel');
  document.getElementById('what').textContent = 'showing generated token ' + (k + 1) + ' of ' + D.matrix.length + ' (score ' + D.scores[k].toFixed(3) + ', row max ' + m.toFixed(4) + ')';
}}
document.querySelectorAll('.gen').forEach(el => el.addEventListener('click', () => show(+el.dataset.i - D.prompt_len)));
document.querySelectorAll('th.row').forEach(el => el.addEventListener('click', () => show(+el.dataset.k)));
show(D.matrix.length - 1);
</script>
</body></html>
"#,
            title = escape(self.title),
            note = escape(self.note),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_every_token_row_and_legend() {
        let tokens: Vec<String> = ["The", " cat", " sat", " <on>", "\n"].iter().map(|s| s.to_string()).collect();
        let matrix = vec![vec![0.5, -1.0, 0.0, 0.0], vec![0.1, 0.2, 0.3, 0.0], vec![1.0, 0.0, 0.0, -2.0]];
        let page = GenerationPage { title: "t", note: "n", tokens: &tokens, prompt_len: 2, matrix: &matrix, scores: &[-1.0, -2.0, -0.5] };
        let html = page.render().unwrap();
        assert_eq!(html.matches("class=\"tok gen\"").count(), 3);
        assert_eq!(html.matches("<tr><th class=\"row\"").count(), 3);
        assert!(html.contains("&lt;on&gt;") && html.contains("⏎") && html.contains("−max"));
        // Row 0 (target " sat", position 2) sees the 2 prompt tokens; the rest are blank.
        let row0 = html.split("data-k=\"0\"").nth(1).unwrap().split("</tr>").next().unwrap();
        assert_eq!(row0.matches("class=\"na\"").count(), 2);
        let bad = GenerationPage { matrix: &matrix[..2], ..page };
        assert!(bad.render().is_err());
    }
}
