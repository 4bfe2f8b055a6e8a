//! The demo's dashboard and `case show`.

use gridcase_engine::log::hex;
use gridcase_engine::time::Timestamp;
use gridcase_engine::Engine;

use crate::error::CliError;
use crate::output::{self, Table};
use crate::Global;

/// Prints the dashboard after a simulation.
pub async fn print(
    g: &Global,
    engine: &Engine,
    report: &gridcase_sim::SimReport,
    now: Timestamp,
) -> Result<(), CliError> {
    let verify = engine.log().verify().await?;
    if g.json {
        return output::json(&serde_json::json!({
            "simulation": report,
            "audit": {"ok": true, "events": verify.events, "head_hash": hex(&verify.head.hash)},
            "now": now,
        }));
    }
    println!("== Simulation");
    println!(
        "{} cases submitted, {} commands, {} escalations, {} dispatches, {} returns, {} reopens, {} closed, {} events in {:.1}s",
        report.submitted, report.commands, report.escalations, report.dispatches, report.returns, report.reopens, report.closed, report.events, report.wall_seconds
    );
    println!(
        "\n== Audit\nOK: {} events, head {} hash {}",
        verify.events,
        verify.head.position,
        hex(&verify.head.hash)
    );
    Ok(())
}

/// `gridcase case show ID`.
pub async fn case_show(g: &Global, engine: &Engine, id: &str) -> Result<(), CliError> {
    let history = engine.history(id).await?;
    let case = engine.case(id).await?;
    if g.json {
        let events: Vec<_> = history
            .iter()
            .map(|(e, r)| serde_json::json!({"position": r.position, "version": r.version, "at": r.recorded_at, "actor": r.actor, "event": e}))
            .collect();
        return output::json(&serde_json::json!({"case": case, "timeline": events}));
    }
    crate::cases::print_case(&case);
    let mut t = Table::new(&["#", "when", "who", "what"]);
    for (e, r) in &history {
        t.row(vec![
            r.version.to_string(),
            r.recorded_at.to_rfc3339(),
            r.actor.clone(),
            e.event_type().to_string(),
        ]);
    }
    println!();
    print!("{}", t.render());
    Ok(())
}
