//! Human tables (aligned for CJK text) and JSON output.

use serde::Serialize;

use crate::error::CliError;

/// Terminal columns a string takes: CJK and full-width characters take two.
pub fn width(s: &str) -> usize {
    s.chars()
        .map(|c| {
            let u = c as u32;
            let wide = matches!(u, 0x1100..=0x115F | 0x2E80..=0xA4CF | 0xAC00..=0xD7A3 | 0xF900..=0xFAFF | 0xFE30..=0xFE4F | 0xFF00..=0xFF60 | 0xFFE0..=0xFFE6);
            if wide {
                2
            } else {
                1
            }
        })
        .sum()
}

/// A table printed with aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table { headers: headers.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, two spaces between columns.
    pub fn render(&self) -> String {
        let n = self.headers.len();
        let mut w = vec![0usize; n];
        for r in std::iter::once(&self.headers).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(width(c));
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, r: &[String]| {
            for (i, c) in r.iter().enumerate().take(n) {
                out.push_str(c);
                if i + 1 < n {
                    out.push_str(&" ".repeat(w[i] - width(c) + 2));
                }
            }
            out.push('\n');
        };
        line(&mut out, &self.headers);
        let rule: Vec<String> = w.iter().map(|x| "-".repeat(*x)).collect();
        line(&mut out, &rule);
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

/// Prints one JSON document.
pub fn json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| CliError::Json(e.to_string()))?;
    println!("{text}");
    Ok(())
}

/// Hours as "3.5h" or days as "2.1d".
pub fn duration_ms(ms: i64) -> String {
    let h = ms as f64 / 3_600_000.0;
    if h < 48.0 {
        format!("{h:.1}h")
    } else {
        format!("{:.1}d", h / 24.0)
    }
}
