//! Pictures of attributions that need no plotting library: a self-contained HTML page that
//! colours each token by its score (diverging red / blue, scaled by the largest |score|),
//! with the score in a tooltip and a legend.

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
