//! Runs the real `gridcase` binary against temporary data directories: the
//! demo, a scripted lifecycle, audit, export/import, and bad input that must
//! change nothing.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

const ORG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../org/tinghu.toml");
const AT: &str = "2026-03-02T08:00:00Z";

fn gridcase(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gridcase"))
        .arg("--data")
        .arg(data)
        .args(args)
        .env_remove("GRIDCASE_STORE")
        .env_remove("GRIDCASE_AT")
        .output()
        .unwrap()
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = gridcase(data, args);
    assert!(out.status.success(), "{args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(data: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(data, &a)).unwrap()
}

/// Event count and head hash: what must not change after a refused command.
fn fingerprint(data: &Path) -> (u64, String) {
    let v = json(data, &["audit", "verify"]);
    (v["events"].as_u64().unwrap(), v["head_hash"].as_str().unwrap().to_string())
}

/// One error line on stderr, a non-zero exit, nothing on stdout.
fn fails(data: &Path, args: &[&str], needle: &str) {
    let out = gridcase(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{args:?}: expected one error line, got {err:?}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{args:?}: {err:?} does not mention {needle:?}");
}

fn init(dir: &Path) {
    // Before every scripted time: the log's clock never goes backwards.
    ok(dir, &["--at", "2026-03-01T00:00:00Z", "init", "--org", ORG]);
}

fn submit(dir: &Path) -> String {
    submit_at(dir, AT)
}

/// [`submit`] at `at` (no earlier than the log's last record).
fn submit_at(dir: &Path, at: &str) -> String {
    let v = json(
        dir,
        &[
            "--at",
            at,
            "submit",
            "--as",
            "resident:13800000000",
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
            "--contact-name",
            "王女士",
            "--contact-phone",
            "13800000000",
        ],
    );
    v["case"]["id"].as_str().unwrap().to_string()
}

#[test]
fn demo_prints_the_dashboard_sections() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = ok(&data, &["demo", "--days", "3", "--rate", "200"]);
    for section in ["== Simulation", "== Audit", "OK:"] {
        assert!(out.contains(section), "dashboard lacks {section:?}:\n{out}");
    }
    // It ends with how to open the web dashboard on this very store.
    let serve = format!("gridcase serve --data {}", data.display());
    assert!(out.trim_end().lines().rev().take(3).any(|l| l.starts_with(&serve)), "{out}");
    assert!(out.trim_end().ends_with("and sign in with the key"), "{out}");
    // A second run replaces its own store.
    ok(&data, &["demo", "--days", "1", "--rate", "50"]);
}

#[test]
fn demo_refuses_a_directory_it_did_not_create() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("precious.txt"), "keep me").unwrap();
    fails(dir.path(), &["demo", "--days", "1"], "did not create");
    assert!(dir.path().join("precious.txt").exists());
}

#[test]
fn scripted_case_walks_the_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let step = |args: &[&str], status: &str| {
        let mut a = vec!["--json", "--at", AT];
        a.extend_from_slice(args);
        let v: serde_json::Value = serde_json::from_str(&ok(d, &a)).unwrap();
        assert_eq!(v["case"]["status"], status, "{args:?}");
    };
    step(
        &["assign", &id, "--worker", "gw-320902001001001", "--as", "cs-320902001001-1"],
        "assigned",
    );
    step(&["escalate", &id, "--reason", "社区无法协调", "--as", "gw-320902001001001"], "escalated");
    step(&["dispatch", &id, "--dept", "D01", "--as", "ss-320902001-1"], "dispatched");
    step(&["return", &id, "--reason", "不属于城管职责", "--as", "ds-D01-1"], "escalated");
    step(
        &[
            "dispatch",
            &id,
            "--dept",
            "D02",
            "--dept",
            "D03",
            "--lead",
            "D02",
            "--as",
            "ss-320902001-1",
        ],
        "dispatched",
    );
    step(&["claim", &id, "--as", "ds-D02-1"], "dispatched");
    step(&["claim", &id, "--as", "ds-D03-1"], "dispatched");
    step(
        &["extend", &id, "--until", "2026-03-20", "--reason", "需要调解", "--as", "ds-D02-1"],
        "dispatched",
    );
    step(&["extension", &id, "--approve", "--as", "sup-1"], "dispatched");
    step(&["resolve", &id, "--note", "已调解", "--as", "ds-D02-1"], "dispatched");
    step(&["resolve", &id, "--note", "已普法", "--as", "ds-D03-1"], "resolved");
    step(
        &[
            "callback",
            &id,
            "--satisfaction",
            "unsatisfied",
            "--solved",
            "no",
            "--as",
            "cs-320902001001-1",
        ],
        "resolved",
    );
    step(&["reopen", &id, "--reason", "噪音仍在", "--as", "cs-320902001001-1"], "dispatched");
    step(&["resolve", &id, "--note", "再次调解", "--as", "ds-D02-1"], "dispatched");
    step(&["resolve", &id, "--note", "再次普法", "--as", "ds-D03-1"], "resolved");
    step(
        &["callback", &id, "--satisfaction", "satisfied", "--as", "cs-320902001001-1"],
        "resolved",
    );
    step(&["close", &id, "--note", "办结", "--as", "cs-320902001001-1"], "closed");
    let shown = ok(d, &["case", "show", &id]);
    for t in ["CaseSubmitted", "CaseReturned", "ExtensionApproved", "CaseReopened", "CaseClosed"] {
        assert!(shown.contains(t), "timeline lacks {t}:\n{shown}");
    }
    let (events, _) = fingerprint(d);
    assert!(events > 3000);
}

#[test]
fn idempotent_retry_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let args = [
        "--json",
        "assign",
        &id,
        "--worker",
        "gw-320902001001001",
        "--as",
        "cs-320902001001-1",
        "--idempotency-key",
        "k-1",
    ];
    ok(d, &args);
    let before = fingerprint(d);
    let again: serde_json::Value = serde_json::from_str(&ok(d, &args)).unwrap();
    assert_eq!(again["deduplicated"], true);
    assert_eq!(fingerprint(d), before);
}

#[test]
fn bad_input_gives_one_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let before = fingerprint(d);
    let sub = |loc: &str| {
        vec![
            "submit".to_string(),
            "--as".into(),
            "resident:1".into(),
            "--category".into(),
            "noise_dispute".into(),
            "--location".into(),
            loc.into(),
            "--description".into(),
            "x".into(),
        ]
    };
    let unknown_grid = sub("999999999999999");
    fails(d, &unknown_grid.iter().map(String::as_str).collect::<Vec<_>>(), "999999999999999");
    // Wrong role: a department cannot assign.
    fails(
        d,
        &["assign", &id, "--worker", "gw-320902001001001", "--as", "ds-D01-1"],
        "not authorised",
    );
    // Wrong unit: another community's staff.
    fails(
        d,
        &["assign", &id, "--worker", "gw-320902001001001", "--as", "cs-320902001002-1"],
        "not authorised",
    );
    // Invalid transition: a submitted case cannot be closed, even by its community.
    fails(d, &["close", &id, "--as", "cs-320902001001-1"], "invalid transition");
    // Malformed time.
    fails(
        d,
        &["extend", &id, "--until", "next tuesday", "--reason", "r", "--as", "cs-320902001001-1"],
        "malformed time",
    );
    fails(d, &["tick", "--now", "soon"], "malformed time");
    // Unknown staff, unknown case.
    fails(d, &["escalate", &id, "--reason", "r", "--as", "nobody"], "nobody");
    fails(d, &["escalate", "GC9999999", "--reason", "r", "--as", "cs-320902001001-1"], "GC9999999");
    // A second init into the same store.
    fails(d, &["init", "--org", ORG], "already");
    assert_eq!(fingerprint(d), before);
}

#[test]
fn missing_data_dir_is_an_error_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    fails(&missing, &["stats"], "no store");
    fails(&missing, &["audit", "verify"], "no store");
    fails(&missing, &["case", "show", "GC0000001"], "no store");
    assert!(!missing.exists());
}

#[test]
fn tampered_store_fails_audit_with_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    submit(d);
    let (events, _) = fingerprint(d);
    {
        let clock = std::sync::Arc::new(gridcase_engine::time::SystemClock);
        let log =
            gridcase_engine::log::SledLog::open(d.join("log"), Default::default(), clock).unwrap();
        log.tamper_for_test(events - 1, 40).unwrap();
    }
    let out = gridcase(d, &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("corruption at position {}", events - 1)), "{err}");
}

#[test]
fn export_import_round_trips_with_the_same_head_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&a, &["demo", "--days", "2", "--rate", "100"]);
    let file = dir.path().join("log.jsonl");
    ok(&a, &["export", "--out", file.to_str().unwrap()]);
    let imported = json(&b, &["import", file.to_str().unwrap()]);
    let (events, hash) = fingerprint(&a);
    assert_eq!(imported["events"].as_u64().unwrap(), events);
    assert_eq!(fingerprint(&b), (events, hash));
    // A tampered export is refused before anything is written.
    let text = std::fs::read_to_string(&file).unwrap();
    let bad = text.replacen("\"actor\":\"system\"", "\"actor\":\"sys7em\"", 1);
    assert_ne!(bad, text);
    let bad_file = dir.path().join("bad.jsonl");
    std::fs::write(&bad_file, bad).unwrap();
    let c = dir.path().join("c");
    fails(&c, &["import", bad_file.to_str().unwrap()], "corruption at position 1");
    assert!(!c.join("log").exists());
}

#[test]
fn replay_as_of_matches_what_was_printed_then() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let t1 = "2026-03-02T09:00:00Z";
    ok(
        d,
        &["--at", t1, "assign", &id, "--worker", "gw-320902001001001", "--as", "cs-320902001001-1"],
    );
    let backlog_then = json(d, &["--at", t1, "backlog"]);
    let overdue_then = json(d, &["--at", t1, "overdue"]);
    let rates_then = json(d, &["--at", t1, "rates", "--period", "2026-03"]);
    // Later history that the replay must not see.
    ok(
        d,
        &[
            "--at",
            "2026-03-03T09:00:00Z",
            "escalate",
            &id,
            "--reason",
            "需要街道",
            "--as",
            "gw-320902001001001",
        ],
    );
    // After the escalation: the log records no time before its last one.
    let id2 = submit_at(d, "2026-03-03T10:00:00Z");
    ok(d, &["--at", "2026-03-20T00:00:00Z", "tick", "--now", "2026-03-20T00:00:00Z"]);
    assert_ne!(
        json(d, &["--at", t1, "backlog"]),
        backlog_then,
        "later events must change today's view"
    );
    let replay = json(d, &["replay", "--as-of", t1, "--period", "2026-03"]);
    assert_eq!(replay["backlog"], backlog_then);
    assert_eq!(replay["overdue"], overdue_then);
    assert_eq!(replay["rates"], rates_then["rates"]);
    // The same cut by position gives the same digests.
    let pos = replay["position"].as_u64().unwrap();
    let by_pos = json(d, &["replay", "--position", &pos.to_string()]);
    assert_eq!(by_pos["digests"], replay["digests"]);
    assert!(ok(d, &["case", "show", &id2]).contains("timeline"));
}

#[test]
fn reports_chains_tick_stats_and_org_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    ok(&d, &["demo", "--days", "3", "--rate", "200"]);
    let at = "2026-03-04T00:00:00Z";
    for cmd in ["backlog", "rates", "chains", "overdue"] {
        let text = ok(&d, &["--at", at, cmd]);
        assert!(text.contains("=="), "{cmd} printed no report:\n{text}");
    }
    let rates = json(&d, &["--at", at, "rates", "--period", "2026-03"]);
    let units = rates["rates"]["units"].as_array().unwrap();
    assert!(units.iter().any(|u| u["kind"] == "street"));
    assert!(units.iter().any(|u| u["kind"] == "department"));
    let chains = json(&d, &["chains"]);
    assert!(chains["shapes"].as_array().unwrap().iter().any(|s| s["shape"] == "community"));
    let stats = json(&d, &["stats"]);
    assert!(stats["events"].as_u64().unwrap() > 3000);
    assert!(stats["per_type"]["CaseSubmitted"].as_u64().unwrap() > 100);
    let tick = json(&d, &["tick", "--now", "2026-04-30T00:00:00Z"]);
    assert!(tick["checked"].as_u64().unwrap() > 0, "{tick}");
    let again = json(&d, &["tick", "--now", "2026-04-30T00:00:00Z"]);
    assert_eq!(again["events"], 0, "a second tick at the same time records nothing");
    let generated = ok(&d, &["org", "generate"]);
    assert_eq!(generated, std::fs::read_to_string(ORG).unwrap());
    assert!(ok(&d, &["org", "check", ORG]).contains("valid"));
}

#[test]
fn migrate_copies_between_sled_stores_with_the_same_head() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ok(&a, &["demo", "--days", "1", "--rate", "100"]);
    let v = json(&a, &["migrate", "--from", a.to_str().unwrap(), "--to", b.to_str().unwrap()]);
    assert_eq!(fingerprint(&b), fingerprint(&a));
    assert_eq!(v["head_hash"].as_str().unwrap(), fingerprint(&a).1);
    // Into a store that is not empty: refused.
    fails(
        &a,
        &["migrate", "--from", a.to_str().unwrap(), "--to", b.to_str().unwrap()],
        "not empty",
    );
    // And to PostgreSQL when CI provides one.
    if let Some(url) = gridcase_postgres::testing::test_url(
        "migrate_copies_between_sled_stores_with_the_same_head",
    ) {
        let schema_url = url.clone();
        let c = dir.path().join("c");
        let out = gridcase(&a, &["migrate", "--from", a.to_str().unwrap(), "--to", &schema_url]);
        if out.status.success() {
            ok(&a, &["migrate", "--from", &schema_url, "--to", c.to_str().unwrap()]);
            assert_eq!(fingerprint(&c), fingerprint(&a));
        } else {
            // The default schema is shared; a previous run may have filled it.
            assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
        }
    }
}

#[test]
fn bench_runs_a_small_workload() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let v = json(
        dir.path(),
        &[
            "bench",
            "--shape",
            "tinghu",
            "--days",
            "1",
            "--drain-days",
            "0",
            "--rate",
            "200",
            "--actors",
            "8",
            "--scratch",
            scratch.to_str().unwrap(),
        ],
    );
    let run = &v["runs"][0];
    assert_eq!(run["store"], "sled");
    assert!(run["events"].as_u64().unwrap() > 100);
    assert!(run["commands_per_s"].as_f64().unwrap() > 0.0);
}

/// `bench --store both` (as the issue spells it) runs the same workload on
/// each store, also with events preloaded; without a PostgreSQL server the
/// sled half is checked.
#[test]
fn bench_store_both_with_preload() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let pg = gridcase_postgres::testing::test_url("bench_store_both_with_preload");
    let kind = if pg.is_some() { "both" } else { "sled" };
    let mut args = vec![
        "bench",
        "--store",
        kind,
        "--shape",
        "tinghu",
        "--days",
        "1",
        "--drain-days",
        "0",
        "--rate",
        "100",
        "--actors",
        "4",
        "--preload",
        "2500",
    ];
    let scratch = scratch.to_str().unwrap().to_string();
    args.extend(["--scratch", scratch.as_str()]);
    if let Some(url) = &pg {
        args.extend(["--pg-url", url.as_str()]);
    }
    let v = json(dir.path(), &args);
    let runs = v["runs"].as_array().unwrap();
    let stores: Vec<&str> = if pg.is_some() { vec!["sled", "postgres"] } else { vec!["sled"] };
    assert_eq!(runs.len(), 2 * stores.len());
    for store in stores {
        let of: Vec<_> = runs.iter().filter(|r| r["store"] == store).collect();
        let preloaded: Vec<u64> = of.iter().map(|r| r["preloaded"].as_u64().unwrap()).collect();
        assert_eq!(preloaded, vec![0, 2500], "{store}");
        // The same seeded workload: the same cases whatever the store holds already.
        assert_eq!(of[0]["cases"], of[1]["cases"], "{store}");
        assert!(of[1]["start_seconds"].as_f64().unwrap() >= 0.0);
        assert!(of[1]["events"].as_u64().unwrap() > 50);
    }
}

#[test]
fn reject_merge_withdraw_supervise_and_list() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let (a, b, c, e) = (submit(d), submit(d), submit(d), submit(d));
    let status = |args: &[&str]| -> String {
        let mut v = vec!["--json", "--at", AT];
        v.extend_from_slice(args);
        let j: serde_json::Value = serde_json::from_str(&ok(d, &v)).unwrap();
        j["case"]["status"].as_str().unwrap().to_string()
    };
    assert_eq!(
        status(&["reject", &a, "--reason", "信息不实", "--as", "cs-320902001001-1"]),
        "rejected"
    );
    assert_eq!(status(&["merge", &b, "--into", &c, "--as", "cs-320902001001-1"]), "merged");
    assert_eq!(
        status(&["withdraw", &c, "--reason", "已自行解决", "--as", "resident:13800000000"]),
        "withdrawn"
    );
    // Supervision only once the case is overdue (noise disputes: 7 days).
    fails(d, &["--at", AT, "supervise", &e, "--note", "请加快", "--as", "sup-1"], "overdue");
    let late = "2026-03-12T00:00:00Z";
    let v: serde_json::Value = serde_json::from_str(&ok(
        d,
        &["--json", "--at", late, "supervise", &e, "--note", "请加快", "--as", "sup-1"],
    ))
    .unwrap();
    assert_eq!(v["events"][0]["CaseSupervised"]["by"], "320902");
    let listed = json(d, &["case", "list", "--unit", "320902001"]);
    let ids: Vec<&str> =
        listed.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, vec![e.as_str()]);
}

/// Runs `args` and returns (exit code, stdout, stderr).
fn run(data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = gridcase(data, args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The data rows of the first table after the line `title` (or of the
/// first table when `title` is empty): lines after the rule, up to a
/// blank line or the rates footer.
fn table_rows(text: &str, title: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !title.is_empty() && l.trim() != title);
    let _ = lines.by_ref().find(|l| l.starts_with("---"));
    lines
        .take_while(|l| !l.trim().is_empty() && !l.contains("below target"))
        .map(str::to_string)
        .collect()
}

/// A store with two open cases in two communities of the same street,
/// and `extra` more in the first grid.
fn two_communities(d: &Path) -> (String, String) {
    init(d);
    let a = submit(d);
    let b = json(
        d,
        &[
            "--at",
            AT,
            "submit",
            "--as",
            "resident:2",
            "--category",
            "noise_dispute",
            "--location",
            "320902001002001",
            "--description",
            "x",
        ],
    )["case"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    (a, b)
}

/// Issue 15, point 1: `--unit` narrows every report, JSON included; an
/// unknown unit and a target that is not a percentage are errors (exit 2);
/// `--top` limits the rates table and the chains' category table.
#[test]
fn unit_top_and_target_apply_to_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    two_communities(d);
    let late = "2026-03-20T00:00:00Z";
    let c1 = "320902001001";
    let rates = json(d, &["--at", late, "rates", "--unit", c1, "--period", "2026-03"]);
    let units = rates["rates"]["units"].as_array().unwrap();
    assert!(!units.is_empty());
    assert!(units.len() < 20, "rates --json ignores --unit: {} units", units.len());
    assert!(units.iter().all(|u| u["code"].as_str().unwrap().starts_with(c1)));
    let backlog = json(d, &["--at", late, "backlog", "--unit", c1]);
    let grids = backlog["grids"].as_array().unwrap();
    assert!(grids.len() < 20, "backlog --json ignores --unit: {} grids", grids.len());
    assert!(grids.iter().all(|g| g["code"].as_str().unwrap().starts_with(c1)));
    let chains = json(d, &["chains", "--unit", c1]);
    let communities = chains["communities"].as_array().unwrap();
    assert_eq!(communities.len(), 1, "chains ignores --unit");
    // Noise disputes are due in 7 days: on the 20th both cases are overdue,
    // one of them in c1.
    let all = json(d, &["--at", late, "overdue"]);
    assert_eq!(all["overdue"], 2);
    let one = json(d, &["--at", late, "overdue", "--unit", c1]);
    assert_eq!(one["overdue"], 1, "overdue's headline ignores --unit");
    let text = ok(d, &["--at", late, "overdue", "--unit", c1]);
    assert_eq!(table_rows(&text, "").len(), 1, "{text}");
    for cmd in ["rates", "backlog", "chains", "overdue"] {
        let (code, out, err) = run(d, &[cmd, "--unit", "123"]);
        assert_eq!(code, Some(2), "{cmd} --unit 123: {err}");
        assert!(err.contains("123") && out.is_empty(), "{cmd}: {err}");
    }
    for target in ["150", "NaN", "0", "-1", "inf"] {
        let (code, _, err) = run(d, &["rates", "--target", target]);
        assert_eq!(code, Some(2), "--target {target}: {err}");
    }
    let text = ok(d, &["--at", late, "rates", "--top", "3", "--period", "2026-03"]);
    assert_eq!(table_rows(&text, "").len(), 3, "rates ignores --top:\n{text}");
    let text = ok(d, &["chains", "--top", "2"]);
    assert!(table_rows(&text, "categories that escalate most").len() <= 2, "{text}");
}

/// Issue 15, point 1: the rates footer names only units in the table, and
/// only those below target.
#[test]
fn rates_footer_names_only_shown_units_below_target() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, _) = two_communities(d);
    ok(d, &["--at", "2026-03-20T00:00:00Z", "tick", "--now", "2026-03-20T00:00:00Z"]);
    let _ = a;
    let text = ok(
        d,
        &["--at", "2026-03-20T00:00:00Z", "rates", "--unit", "320902001001", "--period", "2026-03"],
    );
    let rows = table_rows(&text, "");
    let footer = text.lines().find(|l| l.contains("below target")).unwrap();
    let (_, named) = footer.split_once(": ").unwrap_or((footer, ""));
    for code in named.split(", ").filter(|c| !c.is_empty()) {
        let row = rows.iter().find(|r| r.starts_with(code));
        assert!(
            row.is_some_and(|r| r.contains("BELOW")),
            "{code} named but not shown below target:\n{text}"
        );
    }
    assert!(!named.contains("320902001002"), "a unit outside --unit is named:\n{text}");
}

/// Issue 15, point 2: headers match columns; "oldest backlogs" is ordered
/// by the oldest open case (the under-one-day bucket counts) and lists no
/// grid without an open case; `backlog --period` is refused.
#[test]
fn backlog_and_rates_tables_say_what_they_show() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let sub = |at: &str, grid: &str| {
        ok(
            d,
            &[
                "--at",
                at,
                "submit",
                "--as",
                "resident:1",
                "--category",
                "noise_dispute",
                "--location",
                grid,
                "--description",
                "x",
            ],
        );
    };
    // The higher grid code has the older case; both are under a day old.
    sub("2026-03-02T01:00:00Z", "320902001001003");
    sub("2026-03-02T05:00:00Z", "320902001001002");
    let text = ok(d, &["--at", "2026-03-02T08:00:00Z", "backlog"]);
    let oldest = table_rows(&text, "oldest backlogs");
    assert_eq!(oldest.len(), 2, "grids with no open case are listed:\n{text}");
    assert!(oldest[0].starts_with("320902001001003"), "not ordered by age:\n{text}");
    let text = ok(d, &["--at", "2026-03-02T08:00:00Z", "rates", "--top", "5"]);
    let header = text.lines().find(|l| l.starts_with("unit ")).unwrap();
    let row = &table_rows(&text, "")[0];
    let cols = |l: &str| l.split("  ").filter(|c| !c.trim().is_empty()).count();
    assert_eq!(cols(header), cols(row), "headers do not match columns:\n{text}");
    fails(d, &["backlog", "--period", "2026-03"], "--period");
}

/// Issue 15, point 3: `case list`, `stats` and `backlog` count the same
/// open cases, and a called-back case awaits no callback.
#[test]
fn open_means_the_same_in_case_list_stats_and_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let (a, b, _c) = (submit(d), submit(d), submit(d));
    let cs = "cs-320902001001-1";
    for id in [&a, &b] {
        ok(d, &["--at", AT, "resolve", id, "--note", "done", "--as", cs]);
    }
    ok(d, &["--at", AT, "callback", &a, "--satisfaction", "satisfied", "--as", cs]);
    let listed = json(d, &["--at", AT, "case", "list"]).as_array().unwrap().len();
    let stats = json(d, &["--at", AT, "stats"])["open_cases"].as_u64().unwrap();
    let backlog = json(d, &["--at", AT, "backlog"]);
    let district = &backlog["district"];
    assert_eq!((listed as u64, stats), (3, 3));
    assert_eq!(district["open"], 3, "backlog counts another 'open'");
    assert_eq!(district["in_progress"], 1);
    assert_eq!(district["awaiting_callback"], 1, "a called-back case awaits no callback");
    let text = ok(d, &["--at", AT, "backlog"]);
    assert!(text.contains("3 open (1 in progress, 1 awaiting callback)"), "{text}");
}

/// Issue 15, point 5: a command dated before the log's last record is
/// refused (exit 2) and writes nothing; so is a tick.
#[test]
fn a_command_before_the_last_record_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let before = fingerprint(d);
    let early = "2026-03-01T12:00:00Z";
    let (code, _, err) = run(
        d,
        &[
            "--at",
            early,
            "assign",
            &id,
            "--worker",
            "gw-320902001001001",
            "--as",
            "cs-320902001001-1",
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("before the log's last record"), "{err}");
    let (code, _, err) = run(d, &["tick", "--now", early]);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(fingerprint(d), before);
}

/// Issue 15, point 9: a closed pipe ends the command quietly with 141;
/// stored control characters are shown escaped; errors read as text, not
/// Rust debug forms; corruption exits 3 from every command.
#[test]
fn output_is_safe_for_pipes_terminals_and_scripts() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let evil = "灯\u{1b}[2J\u{1b}]0;pwned\u{7}坏\u{202e}了";
    let id = json(
        d,
        &[
            "--at",
            AT,
            "submit",
            "--as",
            "resident:1",
            "--category",
            "noise_dispute",
            "--location",
            "320902001001001",
            "--description",
            evil,
        ],
    )["case"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let shown = ok(d, &["case", "show", &id]);
    assert!(!shown.contains('\u{1b}') && !shown.contains('\u{7}') && !shown.contains('\u{202e}'));
    assert!(shown.contains("\\u{1b}[2J"), "{shown}");
    let (_, _, err) = run(
        d,
        &[
            "assign",
            &id,
            "--worker",
            "gw-320902001001001",
            "--as",
            "cs-320902001001-1",
            "--if-version",
            "7",
        ],
    );
    assert!(err.contains("version 7") && !err.contains("Exact("), "{err}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_gridcase"))
        .arg("--data")
        .arg(d)
        .args(["--json", "--at", AT, "rates"])
        .env_remove("GRIDCASE_STORE")
        .env_remove("GRIDCASE_AT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{err}");
    assert!(err.is_empty(), "a closed pipe is not an error to print: {err}");

    let (events, _) = fingerprint(d);
    {
        let clock = std::sync::Arc::new(gridcase_engine::time::SystemClock);
        let log =
            gridcase_engine::log::SledLog::open(d.join("log"), Default::default(), clock).unwrap();
        log.tamper_for_test(events - 1, 40).unwrap();
    }
    std::fs::remove_dir_all(d.join("projections")).ok();
    for args in [
        &["audit", "verify"][..],
        &["rates"],
        &["backlog"],
        &["overdue"],
        &["chains"],
        &["stats"],
        &["export"],
        &["replay", "--position", "5"],
    ] {
        let (code, _, err) = run(d, args);
        assert_eq!(code, Some(3), "{args:?}: {err}");
    }
}

/// Issue 15, point 15: times outside 2000..2100 are refused everywhere.
#[test]
fn times_outside_2000_to_2100_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let before = fingerprint(d);
    for until in ["9223372036854775807", "2100-01-02"] {
        fails(
            d,
            &[
                "--at",
                AT,
                "extend",
                &id,
                "--until",
                until,
                "--reason",
                "r",
                "--as",
                "cs-320902001001-1",
            ],
            "outside the accepted range",
        );
    }
    fails(d, &["--at=-9223372036854775808", "overdue"], "outside the accepted range");
    fails(d, &["tick", "--now", "2200-01-01"], "outside the accepted range");
    assert_eq!(fingerprint(d), before);
}

/// Times are typed and printed in the district's zone (+08:00 for Tinghu),
/// with the offset shown: a bare date is local midnight, not 08:00.
#[test]
fn times_are_read_and_shown_in_the_districts_zone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    // 2026-03-02T08:00:00Z is 16:00 local.
    let id = submit(d);
    let show = ok(d, &["case", "show", &id]);
    assert!(show.contains("2026-03-02T16:00:00+08:00"), "{show}");
    assert!(!show.contains("08:00:00Z"), "{show}");
    // Local midnight of the 2nd is before the submission (16:00 local): the
    // replay at that date sees no case; the old reading (UTC midnight,
    // 08:00 local) would also see none, so check the 3rd too, and a local time.
    let before = json(d, &["replay", "--as-of", "2026-03-02T15:59"]);
    assert_eq!(before["backlog"]["district"]["open"], 0, "{before}");
    let after = json(d, &["replay", "--as-of", "2026-03-02 16:00"]);
    assert_eq!(after["backlog"]["district"]["open"], 1, "{after}");
    let text = ok(d, &["replay", "--as-of", "2026-03-03"]);
    assert!(text.contains("as of 2026-03-03T00:00:00+08:00"), "{text}");
    // `tick --now DATE` runs deadlines to local midnight and says so.
    let tick = ok(d, &["tick", "--now", "2026-03-04"]);
    assert!(tick.contains("deadlines up to 2026-03-04T00:00:00+08:00"), "{tick}");
    // A time that is not one names the offset it would be read in.
    fails(d, &["--at", "noon", "backlog"], "+08:00");
}

/// The simulator's residents behave like the sources' residents: some are
/// unsatisfied with a case that was solved, and it closes. The demo's
/// satisfaction rate is then below 100%, and the unsatisfied-but-solved
/// cases are counted in its denominator, not reopened away.
#[test]
fn the_demo_has_unsatisfied_residents_whose_cases_close() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let v = json(&data, &["demo", "--days", "8", "--rate", "300"]);
    let district = v["rates"]["units"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["kind"] == "district")
        .unwrap()
        .clone();
    let s = &district["satisfaction"];
    let (num, den) = (s["numerator"].as_u64().unwrap(), s["denominator"].as_u64().unwrap());
    assert!(den > 50, "too few callbacks to judge: {district}");
    assert!(num < den, "every callback satisfied: {district}");
    // The simulator's mix: about 4% unsatisfied.
    assert!(num * 100 >= den * 85, "{num}/{den}");
}

/// Same seed, same log: two demos give the same head hash, byte for byte
/// (with concurrent actors the commit order, and so the log, used to vary).
#[test]
fn the_demo_with_the_same_seed_writes_the_same_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut heads = Vec::new();
    for n in 0..2 {
        let data = dir.path().join(format!("d{n}"));
        ok(&data, &["demo", "--days", "4", "--rate", "400", "--seed", "7"]);
        heads.push(fingerprint(&data));
    }
    assert!(heads[0].0 > 1_000, "{heads:?}");
    assert_eq!(heads[0], heads[1]);
    // Another seed, another log.
    let other = dir.path().join("other");
    ok(&other, &["demo", "--days", "4", "--rate", "400", "--seed", "8"]);
    assert_ne!(fingerprint(&other), heads[0]);
}

/// The sled log of a data directory, opened behind the CLI's back.
fn raw_log(d: &Path) -> gridcase_engine::log::SledLog {
    let clock = std::sync::Arc::new(gridcase_engine::time::SystemClock);
    gridcase_engine::log::SledLog::open(d.join("log"), Default::default(), clock).unwrap()
}

/// Issue 12, part 1: a record whose bytes changed in the store is served
/// by no command. `case show`, `export`, `replay`, a report, a command on
/// the case and `audit verify` each stop with exit 3 and one line naming
/// the position; the command appends nothing and `export --out` leaves no
/// file behind.
#[test]
fn a_flipped_byte_is_refused_by_every_command_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    let (position, _) = fingerprint(d);
    submit(d);
    let (head, _) = fingerprint(d);
    // Saved projection state at the head.
    ok(d, &["backlog"]);
    raw_log(d).tamper_for_test(position, 40).unwrap();
    let export = dir.path().join("export.jsonl");
    let export_arg = export.to_str().unwrap().to_string();
    let needle = format!("corruption at position {position}");
    for args in [
        &["case", "show", &id][..],
        &["export", "--out", &export_arg],
        &["export"],
        &["replay", "--position", &head.to_string()],
        &["backlog"],
        &["--at", AT, "reject", &id, "--reason", "重复", "--as", "cs-320902001001-1"],
        &["audit", "verify"],
    ] {
        let (code, _, err) = run(d, args);
        assert_eq!(code, Some(3), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 1, "{args:?}: one error line, got {err:?}");
        assert!(lines[0].starts_with("error: ") && lines[0].contains(&needle), "{args:?}: {err}");
    }
    assert!(!export.exists(), "a refused export left a file");
    assert!(std::fs::read_dir(d).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("export")));
    let log = raw_log(d);
    assert_eq!(
        gridcase_engine::log::EventLog::head(&log).position,
        head,
        "the refused command appended"
    );
}

/// Issue 12, part 1: an export's readable fields are bound to the record
/// bytes it carries. Editing the decoded `description` of one line (the
/// bytes and hashes untouched) makes import refuse the file, naming the
/// line and the field, before anything is written.
#[test]
fn import_refuses_a_readable_field_that_disagrees_with_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    init(&a);
    submit(&a);
    let file = dir.path().join("log.jsonl");
    ok(&a, &["export", "--out", file.to_str().unwrap()]);
    let text = std::fs::read_to_string(&file).unwrap();
    // As exported, the file imports.
    let b = dir.path().join("b");
    json(&b, &["import", file.to_str().unwrap()]);
    let n = text.lines().position(|l| l.contains("楼上装修噪音")).unwrap() + 1;
    for (from, to, field) in [
        ("楼上装修噪音", "楼下装修噪音", "event.CaseSubmitted.description"),
        (
            "\"recorded_at\":\"2026-03-02T08:00:00Z\"",
            "\"recorded_at\":\"2026-03-03T08:00:00Z\"",
            "recorded_at",
        ),
    ] {
        let bad = text.replacen(from, to, 1);
        assert_ne!(bad, text, "{from}");
        let bad_file = dir.path().join("bad.jsonl");
        std::fs::write(&bad_file, bad).unwrap();
        let c = dir.path().join("c");
        let (code, _, err) = run(&c, &["import", bad_file.to_str().unwrap()]);
        assert_eq!(code, Some(3), "{err}");
        assert!(err.contains(&format!("line {n}: field {field} ")), "{field}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!c.join("log").exists(), "a refused import wrote a store");
    }
}

#[test]
fn log_key_checkpoint_receipt_and_offline_check() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("store");
    let init_out = json(&d, &["--at", "2026-03-01T00:00:00Z", "init", "--org", ORG]);
    assert_eq!(init_out["origin"], "gridcase/320902");
    assert_eq!(init_out["algorithms"]["signature"], "ed25519");
    let vkey = init_out["vkey"].as_str().unwrap().to_string();
    assert!(vkey.starts_with("gridcase/320902+"));
    // The private key: 0600, never printed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("trust/log.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let skey = std::fs::read_to_string(d.join("trust/log.key")).unwrap();
    assert!(skey.starts_with("PRIVATE+KEY+gridcase/320902+"));
    assert_eq!(ok(&d, &["checkpoint", "--vkey"]).trim(), vkey);

    let case = submit(&d);
    let cp = ok(&d, &["checkpoint"]);
    let (events, _) = fingerprint(&d);
    assert!(cp.starts_with(&format!("gridcase/320902\n{events}\n")), "{cp}");
    assert!(cp.contains("\n\n\u{2014} gridcase/320902 "), "{cp}");
    assert!(!cp.contains("PRIVATE"));

    // The receipt is checked with no store at all: another directory.
    let receipt = dir.path().join("receipt.json");
    ok(&d, &["audit", "receipt", "--case", &case, "--out", receipt.to_str().unwrap()]);
    let nowhere = dir.path().join("no-store");
    let out = ok(&nowhere, &["audit", "check-proof", receipt.to_str().unwrap(), "--vkey", &vkey]);
    assert!(out.contains("verified: 1 record is included"), "{out}");
    assert!(out.contains(&format!("case-{case}")), "{out}");
    assert!(!nowhere.exists());
    // The vkey file works as well as the key itself.
    let vfile = d.join("trust/log.vkey");
    ok(
        &nowhere,
        &["audit", "check-proof", receipt.to_str().unwrap(), "--vkey", vfile.to_str().unwrap()],
    );

    // A changed record byte or another key: exit 3; a malformed file or key: exit 2.
    let text = std::fs::read_to_string(&receipt).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let leaf = v["entries"][0]["leaf"].as_str().unwrap();
    let mut chars: Vec<char> = leaf.chars().collect();
    chars[20] = if chars[20] == 'A' { 'B' } else { 'A' };
    let swapped: String = chars.into_iter().collect();
    assert_ne!(swapped, leaf);
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, text.replacen(leaf, &swapped, 1)).unwrap();
    let (code, _, err) =
        run(&nowhere, &["audit", "check-proof", bad.to_str().unwrap(), "--vkey", &vkey]);
    assert_eq!(code, Some(3), "{err}");
    let other = dir.path().join("other");
    let other_key = json(&other, &["--at", "2026-03-01T00:00:00Z", "init", "--org", ORG])["vkey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(other_key, vkey);
    let (code, _, _) =
        run(&nowhere, &["audit", "check-proof", receipt.to_str().unwrap(), "--vkey", &other_key]);
    assert_eq!(code, Some(3));
    std::fs::write(&bad, "{\"kind\": \"receipt\"}").unwrap();
    let (code, _, _) =
        run(&nowhere, &["audit", "check-proof", bad.to_str().unwrap(), "--vkey", &vkey]);
    assert_eq!(code, Some(2));
    fails(
        &nowhere,
        &["audit", "check-proof", receipt.to_str().unwrap(), "--vkey", "x+1+y"],
        "--vkey",
    );

    // Proofs: inclusion of a position, consistency between two checkpoints.
    let incl = dir.path().join("incl.json");
    ok(&d, &["audit", "prove", "inclusion", "--position", "1", "--out", incl.to_str().unwrap()]);
    ok(&nowhere, &["audit", "check-proof", incl.to_str().unwrap(), "--vkey", &vkey]);
    submit_at(&d, "2026-03-02T09:00:00Z");
    let cp2 = json(&d, &["checkpoint"]);
    assert_eq!(cp2["size"].as_u64().unwrap(), events + 1);
    let cons = dir.path().join("cons.json");
    ok(
        &d,
        &[
            "audit",
            "prove",
            "consistency",
            "--from",
            &events.to_string(),
            "--out",
            cons.to_str().unwrap(),
        ],
    );
    let out = ok(&nowhere, &["audit", "check-proof", cons.to_str().unwrap(), "--vkey", &vkey]);
    assert!(
        out.contains(&format!("at tree size {} extends its tree at size {events}", events + 1)),
        "{out}"
    );
    // The old receipt against the newer checkpoint: a different tree, said plainly.
    let newer = dir.path().join("newer.note");
    std::fs::write(&newer, cp2["note"].as_str().unwrap()).unwrap();
    let (code, _, err) = run(
        &nowhere,
        &[
            "audit",
            "check-proof",
            receipt.to_str().unwrap(),
            "--vkey",
            &vkey,
            "--checkpoint",
            newer.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(3));
    assert!(err.contains("size"), "{err}");
    fails(&d, &["audit", "prove", "consistency", "--from", "3"], "no signed checkpoint of size 3");
    fails(&d, &["audit", "prove", "inclusion", "--position", "0"], "--position 0");
    fails(&d, &["audit", "receipt", "--case", "GC9999999"], "GC9999999");

    // The private key is in no export, and init keeps an existing key.
    let export = dir.path().join("log.jsonl");
    ok(&d, &["export", "--out", export.to_str().unwrap()]);
    let exported = std::fs::read_to_string(&export).unwrap();
    // PRIVATE+KEY+<name>+<key id>+<base64 key>: the key is everything after
    // the fourth '+' (base64 may itself hold '+', so not the last segment,
    // which could be a few characters that any file contains by chance).
    let secret = skey.trim().splitn(5, '+').nth(4).unwrap();
    assert!(secret.len() > 40, "{secret}");
    assert!(!exported.contains(secret));
    fails(&d, &["audit", "keygen"], "already holds the log key");
}

#[test]
fn a_store_without_a_key_proves_nothing_signed_until_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    std::fs::remove_dir_all(d.join("trust")).unwrap();
    fails(d, &["checkpoint"], "no log key");
    fails(d, &["checkpoint", "--vkey"], "no log key");
    // Proofs still come, against the unsigned tree; no verifier accepts that as signed.
    let unsigned = dir.path().join("unsigned.json");
    let (code, _, err) = run(
        d,
        &["audit", "prove", "inclusion", "--position", "2", "--out", unsigned.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("no log key"), "{err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&unsigned).unwrap()).unwrap();
    assert!(v["checkpoint"].as_str().unwrap().starts_with("gridcase/320902\n"), "{v}");
    assert!(!v["checkpoint"].as_str().unwrap().contains('\u{2014}'));
    let k = json(d, &["audit", "keygen", "--origin", "example.org/grid"]);
    let (code, _, err) = run(
        d,
        &[
            "audit",
            "check-proof",
            unsigned.to_str().unwrap(),
            "--vkey",
            k["vkey"].as_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not signed"), "{err}");
    assert_eq!(k["origin"], "example.org/grid");
    let cp = ok(d, &["checkpoint"]);
    assert!(cp.starts_with("example.org/grid\n"), "{cp}");
    fails(d, &["audit", "keygen"], "already holds");
    let e = dir.path().join("e");
    fails(&e, &["init", "--org", ORG, "--origin", "has space"], "--origin");
    assert!(!e.join("log").exists());
}

/// A phone's report with only a point, through the command line: placed
/// in its micro-grid, shown by `case show` and `locate`, counted by
/// `places`; a boundaries file is checked before anything is written.
#[test]
fn a_point_alone_places_a_case_and_the_boundaries_can_be_checked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    init(dir);
    let v = json(
        dir,
        &[
            "--at",
            AT,
            "submit",
            "--as",
            "resident:phone",
            "--channel",
            "app",
            "--category",
            "sanitation",
            "--description",
            "垃圾桶满了",
            "--point",
            "33.39,120.16",
        ],
    );
    let case = &v["case"];
    assert_eq!(case["located_by"], "point");
    let micro = case["micro_grid"].as_str().unwrap().to_string();
    let here = json(dir, &["locate", "--point", "33.39,120.16"]);
    assert_eq!(here["micro_grid"], micro.as_str());
    assert_eq!(here["grid"], case["grid"]);
    // The micro-grid's own coordinates lie in it.
    let p = &json(dir, &["locate", "--address", &micro])["point"];
    let back = format!("{},{}", p["lat"], p["lon"]);
    assert_eq!(json(dir, &["locate", "--point", &back])["micro_grid"], micro.as_str());
    let places = json(dir, &["--at", AT, "places", "--since", "2026-03-01"]);
    assert_eq!(places["located_by"]["point"], 1);
    assert_eq!(places["places"][0]["micro_grid"], micro.as_str());
    fails(dir, &["locate", "--point", "31.2,121.5"], "nearest is micro-grid");
    fails(
        dir,
        &[
            "--at",
            AT,
            "submit",
            "--as",
            "resident:phone",
            "--category",
            "sanitation",
            "--description",
            "x",
            "--point",
            "95,120",
        ],
        "latitude",
    );
    // The shipped boundaries check against the store; a broken copy does not.
    let geojson = concat!(env!("CARGO_MANIFEST_DIR"), "/../org/tinghu.geojson");
    let before = fingerprint(dir);
    assert!(ok(dir, &["org", "import-geojson", geojson, "--dry-run"]).contains("1976 boundaries"));
    let text = std::fs::read_to_string(geojson).unwrap();
    let broken = dir.join("broken.geojson");
    std::fs::write(
        &broken,
        text.replacen("\"code\":\"32090200100100101\"", "\"code\":\"nope\"", 1),
    )
    .unwrap();
    fails(dir, &["org", "import-geojson", broken.to_str().unwrap()], "\"nope\" is not a unit");
    assert_eq!(fingerprint(dir), before);
    // A real import appends one batch to the org stream.
    assert!(
        ok(dir, &["--at", AT, "org", "import-geojson", geojson]).contains("loaded at positions")
    );
}

#[test]
fn case_show_as_an_actor_applies_the_scope_and_audit_reads_lists_who_saw_the_phone() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    init(d);
    let id = submit(d);
    // Another community: as for a missing case.
    fails(d, &["case", "show", &id, "--as", "cs-320902001002-1"], "does not exist");
    assert!(!ok(d, &["case", "list", "--as", "cs-320902001002-1"]).contains(&id));
    // The grid's worker reads it, without the phone and with the pseudonym.
    let gw = json(d, &["case", "show", &id, "--as", "gw-320902001001001"]);
    assert!(gw["case"]["contact"].is_null());
    let pseudonym = gw["case"]["submitted_by"].as_str().unwrap();
    assert!(pseudonym.starts_with("resident:~"), "{pseudonym}");
    assert!(!gw.to_string().contains("13800000000"), "{gw}");
    assert_eq!(gw["timeline"][0]["actor"], pseudonym);
    // The community sees the phone, and that is recorded (twice within a
    // minute: once), at the command's time; the operator's own read is not.
    for _ in 0..2 {
        let cs = json(d, &["--at", AT, "case", "show", &id, "--as", "cs-320902001001-1"]);
        assert_eq!(cs["case"]["contact"]["phone"], "13800000000");
    }
    ok(d, &["case", "show", &id]);
    let reads = json(d, &["audit", "reads", "--case", &id]);
    let readers: Vec<&str> =
        reads.as_array().unwrap().iter().map(|r| r["reader"].as_str().unwrap()).collect();
    assert_eq!(readers, ["cs-320902001001-1"], "{reads}");
    assert_eq!(reads[0]["surface"], "cli");
    assert_eq!(reads[0]["fields"], serde_json::json!(["contact", "submitted_by"]));
    assert_eq!(reads[0]["at"], "2026-03-02T16:00:00+08:00", "the district's zone");
    let text = ok(d, &["audit", "reads", "--case", &id]);
    assert!(text.contains("cs-320902001001-1") && text.contains("shown 1 times"), "{text}");
    // Reads at the scripted time leave later scripted commands possible.
    ok(d, &["--at", "2026-03-02T09:00:00Z", "tick", "--now", "2026-03-02T09:00:00Z"]);
    fails(d, &["audit", "reads", "--case", "GC0009999"], "does not exist");
}
