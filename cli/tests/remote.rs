//! The CLI on a live district: a real `gridcase serve` process holds the
//! store, and the other commands run through it (`cli/src/remote.rs`).
//! What they print must be what they print offline on the same log.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../org/tinghu.toml");
const RESIDENT: &str = "resident:13800000000";
/// The reports' "now": fixed, so that aging reads the same live and offline.
const AT: &str = "2026-03-05T12:00:00+08:00";

fn command(data: &Path, args: &[&str], key: Option<&str>) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gridcase"));
    c.arg("--data").arg(data).args(args);
    for v in ["GRIDCASE_STORE", "GRIDCASE_AT", "GRIDCASE_DATA", "GRIDCASE_API_KEY"] {
        c.env_remove(v);
    }
    if let Some(k) = key {
        c.env("GRIDCASE_API_KEY", k);
    }
    c
}

/// Runs a command; a command that does not end within two minutes is
/// killed and fails the test (a hang guard, not a timing assertion).
fn run(data: &Path, args: &[&str], key: Option<&str>) -> Output {
    let mut child =
        command(data, args, key).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Drain the pipes on threads so a large output cannot block the child.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).unwrap();
        v
    });
    let err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).unwrap();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{args:?} did not end: the CLI hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

fn ok(data: &Path, args: &[&str], key: Option<&str>) -> Vec<u8> {
    let out = run(data, args, key);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    serde_json::from_slice(&ok(data, args, None)).unwrap()
}

/// One `error: ` line mentioning `needle`, exit `code`, nothing on stdout.
fn fails(data: &Path, args: &[&str], key: Option<&str>, code: i32, needle: &str) {
    let out = run(data, args, key);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one line, got {err:?}");
    assert!(lines[0].starts_with("error: ") && lines[0].contains(needle), "{args:?}: {err:?}");
}

fn submit(at: Option<&str>) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if let Some(t) = at {
        a.extend(["--at".into(), t.into()]);
    }
    a.extend(
        [
            "--json",
            "submit",
            "--as",
            RESIDENT,
            "--category",
            "noise_dispute",
            "--location",
            "320902001001001",
            "--description",
            "楼上装修噪音",
            "--channel",
            "app",
            "--kind",
            "complaint",
        ]
        .map(String::from),
    );
    a
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A store with the Tinghu organisation, two cases and an API key for the
/// resident who submitted them; returns the key.
fn store(data: &Path) -> String {
    ok(data, &["--at", "2026-03-01T00:00:00Z", "init", "--org", ORG], None);
    for at in ["2026-03-02T08:00:00Z", "2026-03-02T09:00:00Z"] {
        ok(data, &strs(&submit(Some(at))), None);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&ok(data, &["--json", "apikey", "create", "--as", RESIDENT], None))
            .unwrap();
    v["key"].as_str().unwrap().to_string()
}

/// A running `gridcase serve`; stopped (SIGTERM) or killed by the test.
struct Served {
    child: Child,
}

impl Served {
    /// Starts it and waits for its "listening on" line: the control socket
    /// exists from then on.
    fn start(data: &Path) -> Served {
        let mut child = command(
            data,
            &["serve", "--listen", "127.0.0.1:0", "--tick-seconds", "0", "--checkpoint-every", "0"],
            None,
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        assert!(line.starts_with("listening on "), "serve printed {line:?}");
        assert!(socket(data).exists());
        Served { child }
    }

    /// SIGTERM, and waits for the clean shutdown.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        assert!(self.child.wait().unwrap().success());
    }

    /// SIGKILL: nothing is cleaned up.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn socket(data: &Path) -> PathBuf {
    data.join("control.sock")
}

/// The reads compared live and offline, and `stats` without its size on
/// disk (the server's shutdown saves the engine checkpoint into the store).
fn reads(data: &Path, case: &str) -> Vec<(String, Vec<u8>)> {
    let runs: Vec<Vec<&str>> = vec![
        vec!["--at", AT, "rates"],
        vec!["--at", AT, "--json", "rates"],
        vec!["--at", AT, "backlog", "--json"],
        vec!["--at", AT, "overdue"],
        vec!["--at", AT, "chains"],
        vec!["audit", "verify"],
        vec!["--at", AT, "case", "show", case],
        vec!["--json", "case", "show", case],
        vec!["case", "list"],
        vec!["export"],
        vec!["replay", "--position", "3"],
    ];
    let mut all: Vec<(String, Vec<u8>)> =
        runs.iter().map(|a| (a.join(" "), ok(data, a, None))).collect();
    let mut stats = json(data, &["--json", "stats"]);
    stats.as_object_mut().unwrap().remove("size_bytes");
    all.push(("stats".into(), stats.to_string().into_bytes()));
    all
}

#[test]
fn the_cli_works_on_a_live_district() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    let key = store(&data);
    let server = Served::start(&data);

    // Without a server in between this would be "the store is in use".
    let before = json(&data, &["--json", "audit", "verify"]);
    assert_eq!(before["events"].as_u64(), before["head_position"].as_u64());

    // A write without a key is refused and appends nothing; with the key
    // it is appended as the key's actor; never as another actor, never at
    // a pinned time.
    fails(&data, &strs(&submit(None)), None, 2, "needs an API key");
    fails(&data, &strs(&submit(Some("2026-03-03"))), Some(&key), 2, "--at");
    let mut other = submit(None);
    other[3] = "resident:13900000000".into();
    fails(&data, &strs(&other), Some(&key), 2, "acts as resident:13800000000");
    fails(&data, &["rates"], Some("gck_not_a_key"), 2, "not known");
    assert_eq!(json(&data, &["--json", "audit", "verify"]), before);
    let made: serde_json::Value =
        serde_json::from_slice(&ok(&data, &strs(&submit(None)), Some(&key))).unwrap();
    let case = made["case"]["id"].as_str().unwrap().to_string();
    let after = json(&data, &["--json", "audit", "verify"]);
    assert_eq!(after["events"].as_u64().unwrap(), before["events"].as_u64().unwrap() + 1);

    // A key made while the server runs is checked against its registry
    // and works at once; `case show --as` (it records personal-data reads)
    // acts as the key's actor.
    fails(&data, &["apikey", "create", "--as", "nobody-1"], None, 2, "nobody-1");
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&data, &["--json", "apikey", "create", "--as", "sup-1"], None))
            .unwrap();
    let sup = v["key"].as_str().unwrap();
    fails(&data, &["case", "show", &case, "--as", "sup-1"], None, 2, "needs an API key");
    let shown = ok(&data, &["case", "show", &case, "--as", "sup-1"], Some(sup));
    assert!(String::from_utf8_lossy(&shown).contains(&case));

    // What must own the files is refused with one line (exit 4).
    fails(&data, &["serve", "--listen", "127.0.0.1:0"], None, 4, "stop the server first");
    fails(&data, &["init", "--org", ORG], None, 4, "stop the server first");
    fails(&data, &["import", "x.jsonl"], None, 4, "stop the server first");
    fails(&data, &["tick", "--now", "2026-03-09"], None, 4, "stop the server first");

    // A reader that is gone before the first byte: quiet, exit 141, and
    // the server goes on serving.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let closed = command(&data, &["--json", "rates"], None)
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(closed.status.code(), Some(141));
    assert!(closed.stderr.is_empty(), "{}", String::from_utf8_lossy(&closed.stderr));

    // A file is written where the client named it, relative to its cwd.
    let cwd = tmp.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let st = command(&data, &["export", "--out", "live.jsonl"], None)
        .current_dir(&cwd)
        .output()
        .unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));

    let live = reads(&data, &case);
    server.stop();
    assert!(!socket(&data).exists(), "the socket outlived its server");
    let offline = reads(&data, &case);
    for ((what, l), (_, o)) in live.iter().zip(&offline) {
        assert!(!l.is_empty(), "{what} printed nothing");
        assert!(
            l == o,
            "{what} differs:\nlive:\n{}\noffline:\n{}",
            String::from_utf8_lossy(l),
            String::from_utf8_lossy(o)
        );
    }
    let export = &offline.iter().find(|(w, _)| w == "export").unwrap().1;
    assert_eq!(&std::fs::read(cwd.join("live.jsonl")).unwrap(), export);
}

#[test]
fn a_stale_socket_does_not_hang_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("d");
    store(&data);
    Served::start(&data).kill();
    // kill -9 leaves the socket file: connecting is refused, and the
    // command opens the store itself (the lock died with the process).
    assert!(socket(&data).exists());
    let offline = ok(&data, &["--at", AT, "rates"], None);
    // A new server replaces the stale socket and answers through it.
    let server = Served::start(&data);
    fails(&data, &["init", "--org", ORG], None, 4, "stop the server first");
    assert_eq!(ok(&data, &["--at", AT, "rates"], None), offline);
    server.stop();
}
