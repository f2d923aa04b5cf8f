//! The confusion matrix drawn for people, as a self-contained SVG (no plotting library:
//! it is a grid of rectangles and numbers).

use std::fmt::Write;

use edge_classifier::api::Evaluation;

const CELL: usize = 90;
const LEFT: usize = 120;
const TOP: usize = 110;

/// An SVG of `e.confusion`: rows are true labels, columns predicted ones; a cell's shade is
/// its share of the row, so the diagonal reads as per-class recall.
pub fn confusion_svg(e: &Evaluation) -> String {
    let k = e.labels.len();
    let (w, h) = (LEFT + k * CELL + 20, TOP + k * CELL + 40);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">Confusion matrix: accuracy {:.4}, macro-F1 {:.4}, {} examples</text>"#,
        e.accuracy, e.macro_f1, e.examples
    );
    let _ = writeln!(s, r#"<text x="{}" y="50" text-anchor="middle">predicted</text>"#, LEFT + k * CELL / 2);
    let _ = writeln!(
        s,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">true</text>"#,
        TOP + k * CELL / 2,
        TOP + k * CELL / 2
    );
    for (j, label) in e.labels.iter().enumerate() {
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
            LEFT + j * CELL + CELL / 2,
            TOP - 10,
            escape(label)
        );
    }
    for (i, row) in e.confusion.iter().enumerate() {
        let total: u64 = row.iter().sum();
        let y = TOP + i * CELL;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
            LEFT - 8,
            y + CELL / 2 + 5,
            escape(&e.labels[i])
        );
        for (j, &count) in row.iter().enumerate() {
            let share = if total == 0 { 0.0 } else { count as f64 / total as f64 };
            // White to deep blue by share of the row.
            let shade = |full: f64| (255.0 - share * (255.0 - full)).round() as u8;
            let (r, g, b) = (shade(31.0), shade(78.0), shade(160.0));
            let ink = if share > 0.5 { "white" } else { "black" };
            let x = LEFT + j * CELL;
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="#{r:02x}{g:02x}{b:02x}" stroke="#999"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle" fill="{ink}">{count}</text><text x="{}" y="{}" text-anchor="middle" font-size="11" fill="{ink}">{:.1}%</text>"#,
                x + CELL / 2,
                y + CELL / 2,
                x + CELL / 2,
                y + CELL / 2 + 16,
                share * 100.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
