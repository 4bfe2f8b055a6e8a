//! Human tables (aligned for CJK text) and JSON output, and the one way
//! the CLI writes to standard output ([`out`], the `outln!`/`out!` macros):
//! a reader that goes away (`gridcase rates --json | head -c 10`) ends the
//! command quietly with [`CliError::StdoutClosed`] instead of a panic.
//!
//! A command the running server executes for a client (`crate::remote`)
//! writes through the same functions: they send its output over the
//! control socket instead of to the server's own standard output.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;

use serde::Serialize;

use crate::error::CliError;

/// Writes to standard output; a closed pipe is [`CliError::StdoutClosed`].
pub fn out(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    if crate::remote::is_hosted() {
        // One frame per call, not one per formatted piece.
        return Stdout.write_all(args.to_string().as_bytes()).map_err(stdout_error);
    }
    std::io::stdout().lock().write_fmt(args).map_err(stdout_error)
}

/// The command's standard output as a writer: the process's own, or the
/// client's when the server runs the command for it (`crate::remote`).
/// Commands that stream (`export`) wrap it in a `BufWriter`.
pub struct Stdout;

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match crate::remote::sink_write(crate::remote::Channel::Stdout, buf) {
            Some(r) => r.map(|()| buf.len()),
            None => std::io::stdout().lock().write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match crate::remote::sink_write(crate::remote::Channel::Stdout, buf) {
            Some(r) => r,
            None => std::io::stdout().lock().write_all(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if crate::remote::is_hosted() {
            // Each write is already a frame on the socket.
            return Ok(());
        }
        std::io::stdout().lock().flush()
    }
}

/// Writes a notice or warning to standard error (the client's, for a
/// command the server runs for it). A failure to write it is ignored, as
/// `eprintln!` would panic instead: a notice is not worth a failed command.
pub fn err(args: fmt::Arguments<'_>) {
    let text = args.to_string();
    match crate::remote::sink_write(crate::remote::Channel::Stderr, text.as_bytes()) {
        Some(_) => {}
        None => {
            let _ = std::io::stderr().lock().write_all(text.as_bytes());
        }
    }
}

/// The error of a failed write to standard output.
pub fn stdout_error(e: std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::StdoutClosed
    } else {
        CliError::Io { what: "cannot write to standard output".into(), source: e }
    }
}

/// `println!` through [`out`]: evaluates to `Result<(), CliError>`.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::out(format_args!("\n"))
    };
    ($($t:tt)*) => {
        $crate::output::out(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `eprintln!` through [`err`]: notices and warnings of a command.
#[macro_export]
macro_rules! errln {
    ($($t:tt)*) => {
        $crate::output::err(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` through [`out`]: evaluates to `Result<(), CliError>`.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => {
        $crate::output::out(format_args!($($t)*))
    };
}

/// Text from the store (descriptions, notes, reasons, names) made safe for
/// a terminal: control characters (C0, DEL, C1) and the bidirectional
/// overrides and isolates, which can rewrite or hide what is on screen,
/// are shown as `\u{1b}`-style escapes; everything else, CJK included, as
/// is. Every table cell goes through it, and so does every other line
/// that prints stored text.
pub fn clean(s: &str) -> Cow<'_, str> {
    let unsafe_char =
        |c: char| c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    if !s.chars().any(unsafe_char) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if unsafe_char(c) {
            o.extend(c.escape_unicode());
        } else {
            o.push(c);
        }
    }
    Cow::Owned(o)
}

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

    /// Adds a row; each cell is shown through [`clean`].
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells.into_iter().map(|c| clean(&c).into_owned()).collect());
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
    crate::outln!("{text}")
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
