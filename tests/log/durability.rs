//! The default durability syncs before it acknowledges, seen from outside.
//!
//! Runs the `crash_writer` binary under `strace` doing single-event appends,
//! one at a time, in the default mode, and reads the trace: every
//! acknowledgement it prints (`write(1, "ack …")`) must be preceded, since
//! the acknowledgement before it, by a completed `fdatasync` of sled's data
//! file. One task appends one event at a time, so each append is a group of
//! its own, and the sync between two acknowledgements is that group's.
//!
//! Without `strace` the test prints `SKIPPED: strace not installed` and
//! passes, except under CI (the `CI` variable set), where it fails: CI
//! installs strace (`.ci/run`), so a missing one there is a broken setup.

use std::collections::HashMap;
use std::process::Command;

const APPENDS: usize = 40;

/// Skips (or, under CI, fails) with `why`.
fn skip(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and CI is set: this test must run there");
    }
    eprintln!("SKIPPED: {why}");
}

/// What a trace line is, for this test.
#[derive(Debug, PartialEq)]
enum Seen {
    /// An `fdatasync` of sled's data file returned 0.
    DataSync,
    /// The writer printed an acknowledgement.
    Ack,
}

/// Reads `strace -f -y -o` output into the events this test cares about,
/// joining calls that strace split into `<unfinished ...>` and `resumed`.
fn events(trace: &str) -> Vec<Seen> {
    let mut out = Vec::new();
    // pid → whether its unfinished fdatasync is of sled's data file.
    let mut open: HashMap<&str, bool> = HashMap::new();
    for line in trace.lines() {
        let pid = line.split_whitespace().next().unwrap_or("");
        let is_db = line.contains("/db>");
        if line.contains("fdatasync(") {
            if line.contains("<unfinished") {
                open.insert(pid, is_db);
            } else if is_db && line.trim_end().ends_with("= 0") {
                out.push(Seen::DataSync);
            }
        } else if line.contains("<... fdatasync resumed>") {
            if open.remove(pid) == Some(true) && line.trim_end().ends_with("= 0") {
                out.push(Seen::DataSync);
            }
        } else if line.contains("write(1") && line.contains("\"ack ") {
            out.push(Seen::Ack);
        }
    }
    out
}

#[test]
fn default_mode_fdatasyncs_each_group_before_acknowledging() {
    if Command::new("strace").arg("-V").output().is_err() {
        return skip("strace not installed");
    }
    let dir = tempfile::tempdir().unwrap();
    let trace_file = dir.path().join("trace");
    let store = dir.path().join("store");
    let output = Command::new("strace")
        .args(["-f", "-y", "-ttt", "-e", "trace=fdatasync,fsync,sync_file_range,write"])
        .arg("-o")
        .arg(&trace_file)
        .arg(env!("CARGO_BIN_EXE_crash_writer"))
        .arg(&store)
        .args(["--tasks", "1", "--streams", "1", "--events", "1"])
        .args(["--appends", &APPENDS.to_string(), "--max-seconds", "60"])
        .output()
        .expect("run crash_writer under strace");
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("Operation not permitted") && stderr.contains("ptrace") {
        return skip("strace may not trace here (ptrace not permitted)");
    }
    assert!(output.status.success(), "crash_writer under strace failed: {stderr}");
    let acks =
        String::from_utf8_lossy(&output.stdout).lines().filter(|l| l.starts_with("ack ")).count();
    assert_eq!(acks, APPENDS, "every append is acknowledged");

    let trace = std::fs::read_to_string(&trace_file).expect("read the trace");
    let seen = events(&trace);
    assert_eq!(seen.iter().filter(|s| **s == Seen::Ack).count(), APPENDS, "acks in the trace");
    let mut synced = false;
    for (i, s) in seen.iter().enumerate() {
        match s {
            Seen::DataSync => synced = true,
            Seen::Ack => {
                assert!(
                    synced,
                    "acknowledgement {i} of the trace without an fdatasync of db before it"
                );
                synced = false;
            }
        }
    }
}

#[test]
fn trace_reading_joins_split_calls() {
    let trace = "\
7 1.0 fdatasync(5</s/db> <unfinished ...>
8 1.1 write(1, \"ack 1 1 s 1 b 1\\n\", 16) = 16
7 1.2 <... fdatasync resumed>) = 0
8 1.3 write(1, \"ack 2 2 s 2 b 1\\n\", 16) = 16
7 1.4 fdatasync(6</s/conf>) = 0
7 1.5 fdatasync(5</s/db>) = 0
";
    assert_eq!(events(trace), vec![Seen::Ack, Seen::DataSync, Seen::Ack, Seen::DataSync]);
}
