//! Measures this machine's durable-write latency: 4 KiB appended to a file
//! and `fdatasync`ed, in a loop; prints median and p99. The log's Durable
//! mode cannot acknowledge a commit faster than this.
//!
//! `cargo bench --bench fsync_probe -- [--dir DIR] [--samples N]` (default:
//! the system temporary directory, 2,000 samples or 10 s).

#[path = "support/fsync.rs"]
mod fsync;

use std::time::Duration;

fn main() {
    let mut dir = std::env::temp_dir();
    let mut samples = 2000;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().expect("--dir DIR").into(),
            "--samples" => samples = args.next().and_then(|v| v.parse().ok()).expect("--samples N"),
            _ => {} // `cargo bench` passes `--bench`.
        }
    }
    match fsync::probe(&dir, samples, Duration::from_secs(10)) {
        Ok(report) => println!("{} in {}", report, dir.display()),
        Err(e) => {
            eprintln!("fsync probe failed in {}: {e}", dir.display());
            std::process::exit(1);
        }
    }
}
