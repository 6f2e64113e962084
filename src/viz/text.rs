//! Text on pictures without a font file: the public-domain 8×8 bitmap glyphs of `font8x8`
//! (ASCII, Latin-1, Greek), so that a figure can name its columns, rows and colour scale.

use font8x8::{UnicodeFonts, BASIC_FONTS, GREEK_FONTS, LATIN_FONTS, MISC_FONTS};
use image::{Rgb, RgbImage};

/// Width and height of one glyph at scale 1, in pixels.
pub const GLYPH: u32 = 8;
/// Height of one line of text at scale 1 (glyph plus spacing).
pub const LINE: u32 = 10;

/// The bitmap of a character; characters the font lacks fall back to a look-alike or '?'.
fn glyph(c: char) -> [u8; 8] {
    let c = match c {
        '−' | '–' | '—' => '-',
        '·' | '•' => '.',
        '“' | '”' => '"',
        '‘' | '’' => '\'',
        c => c,
    };
    BASIC_FONTS
        .get(c)
        .or_else(|| LATIN_FONTS.get(c))
        .or_else(|| GREEK_FONTS.get(c))
        .or_else(|| MISC_FONTS.get(c))
        .or_else(|| BASIC_FONTS.get('?'))
        .unwrap_or([0; 8])
}

/// Width of `text` in pixels at `scale`.
pub fn width(text: &str, scale: u32) -> u32 {
    text.chars().count() as u32 * GLYPH * scale
}

/// Draws `text` with its top-left corner at (x, y); pixels outside the image are skipped.
pub fn draw(img: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, colour: Rgb<u8>) {
    for (i, c) in text.chars().enumerate() {
        let rows = glyph(c);
        let x0 = x + i as u32 * GLYPH * scale;
        for (gy, bits) in rows.iter().enumerate() {
            for gx in 0..8u32 {
                // font8x8 stores the leftmost pixel in the lowest bit.
                if bits >> gx & 1 == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (x0 + gx * scale + dx, y + gy as u32 * scale + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}

/// Splits `text` into lines of at most `max_chars` characters, breaking after spaces, '_',
/// '-', '/' or ',' where it can and inside a word only where a word alone is too long.
pub fn wrap(text: &str, max_chars: usize) -> Vec<String> {
    let max_chars = max_chars.max(1);
    let mut lines = vec![];
    for paragraph in text.split('\n') {
        // Pieces end just after a break character, so that joining them gives the text back.
        let mut pieces: Vec<String> = vec![];
        let mut cur = String::new();
        for c in paragraph.chars() {
            cur.push(c);
            if matches!(c, ' ' | '_' | '-' | '/' | ',') {
                pieces.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            pieces.push(cur);
        }
        let mut line = String::new();
        for piece in pieces {
            if line.chars().count() + piece.trim_end().chars().count() > max_chars
                && !line.is_empty()
            {
                lines.push(line.trim_end().to_string());
                line.clear();
            }
            for c in piece.chars() {
                if line.chars().count() == max_chars {
                    lines.push(std::mem::take(&mut line));
                }
                line.push(c);
            }
        }
        lines.push(line.trim_end().to_string());
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wraps_at_separators_and_splits_long_words() {
        assert_eq!(
            wrap("lrp_epsilon_gamma_box", 12),
            ["lrp_epsilon_", "gamma_box"]
        );
        assert_eq!(
            wrap("integrated-gradients", 8),
            ["integrat", "ed-", "gradient", "s"]
        );
        assert_eq!(wrap("label 7 pred 7", 8), ["label 7", "pred 7"]);
        assert_eq!(wrap("a\nb", 8), ["a", "b"]);
        for line in wrap("a fairly long sentence, with separators_and-dashes", 9) {
            assert!(line.chars().count() <= 9, "{line:?}");
        }
    }

    /// The letter 'I' at scale 2 paints pixels inside its box and none outside.
    #[test]
    fn draws_inside_the_glyph_box() {
        let mut img = RgbImage::from_pixel(40, 20, Rgb([255, 255, 255]));
        draw(&mut img, 4, 2, "I", 2, Rgb([0, 0, 0]));
        let dark: Vec<(u32, u32)> = img
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [0, 0, 0])
            .map(|(x, y, _)| (x, y))
            .collect();
        assert!(dark.len() > 20, "{} dark pixels", dark.len());
        assert!(dark
            .iter()
            .all(|&(x, y)| (4..20).contains(&x) && (2..18).contains(&y)));
        assert_eq!(width("Iε×", 2), 48);
        assert_ne!(glyph('ε'), glyph('?'), "Greek letters are in the font");
    }
}
