//! The fsync probe shared by `benches/log.rs` and `benches/fsync_probe.rs`:
//! writes 4 KiB at the end of a file and `fdatasync`s it, in a loop, to show
//! what one durable write costs on this machine's disk.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Latency figures of the probe, in microseconds.
pub struct FsyncReport {
    /// Writes + syncs measured.
    pub samples: usize,
    /// Median write + sync.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Slowest.
    pub max_us: f64,
}

impl std::fmt::Display for FsyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "fsync (4 KiB append + fdatasync, {} samples): p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
            self.samples, self.p50_us, self.p99_us, self.max_us
        )
    }
}

/// Runs the probe in `dir` for at most `budget` or `max_samples` syncs.
pub fn probe(dir: &Path, max_samples: usize, budget: Duration) -> std::io::Result<FsyncReport> {
    let path = dir.join("fsync-probe.bin");
    let mut file = OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
    let block = vec![0x5au8; 4096];
    let mut samples = Vec::with_capacity(max_samples);
    let start = Instant::now();
    while samples.len() < max_samples && start.elapsed() < budget {
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    drop(file);
    std::fs::remove_file(&path)?;
    samples.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Ok(FsyncReport {
        samples: samples.len(),
        p50_us: at(0.5),
        p99_us: at(0.99),
        max_us: *samples.last().unwrap_or(&0.0),
    })
}
