//! Embedding gridcase in a portal: open the embedded store, load the
//! organisation, run a case through its whole lifecycle, handle a refused
//! command, follow the typed feed, print the case's timeline and a unit's
//! resolution rate.
//!
//! Run it with `cargo run -p gridcase-engine --example embed`. It uses a
//! manual clock so that its output is the same on every run.

use std::sync::Arc;

use futures::StreamExt;
use gridcase_engine::domain::{
    ActorId, CaseId, Channel, Command, Contact, Priority, RequestKind, Satisfaction, Submission,
};
use gridcase_engine::engine::{CommandOptions, FeedOptions};
use gridcase_engine::log::SledOptions;
use gridcase_engine::org::OrgFile;
use gridcase_engine::time::{ManualClock, Timestamp, HOUR_MS};
use gridcase_engine::{Engine, Error};
use gridcase_projections::{Config, Period, ProjectionSet};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Open a store. `Engine::open_sled` creates it if the directory is
    //    empty; a deployment would use a fixed path and the system clock.
    let dir = tempfile::tempdir()?;
    let clock = ManualClock::new(Timestamp::parse("2026-03-02T09:00:00+08:00")?);
    let engine =
        Engine::open_sled(dir.path(), SledOptions::default(), Arc::new(clock.clone())).await?;
    let org = OrgFile::parse(include_str!("district.toml"))?;
    engine.init_org(&ActorId::System, &org).await?;

    // 2. A resident reports a problem. Residents are pseudonymous ids.
    let resident = ActorId::resident("li-7f3a")?;
    let submission = Submission {
        channel: Channel::App,
        kind: RequestKind::Report,
        category: "street_light".into(),
        priority: Priority::Normal,
        description: "3号楼门口路灯不亮".into(),
        location: "320902001001001".into(),
        contact: Some(Contact { name: "李女士".into(), phone: "13800000001".into() }),
        point: None,
        media: Vec::new(),
        reporter: None,
    };
    let opened = engine.submit(&resident, submission, CommandOptions::default()).await?;
    let id: CaseId = opened.case.id.parse()?;
    println!("opened {id} at position {}", opened.records[0].position);

    // 3. The community cannot fix it and escalates; the street dispatches to
    //    the lighting department, which claims and resolves it.
    let steps = [
        ("cs11", Command::Escalate { reason: "需要市政维修".into() }),
        (
            "ss1",
            Command::Dispatch {
                departments: vec!["D01".into()],
                lead: None,
                note: "请城管局处理".into(),
            },
        ),
        ("d01a", Command::Claim),
        ("d01a", Command::Resolve { note: "更换灯具".into() }),
    ];
    for (who, command) in steps {
        clock.advance(2 * HOUR_MS);
        let r =
            engine.execute(&ActorId::staff(who)?, &id, command, CommandOptions::default()).await?;
        println!("  {who}: {} -> {}", r.events[0].event_type(), r.case.status.as_str());
    }

    // 4. A refused command is a value: nothing is written.
    let refused = engine
        .execute(&ActorId::staff("gw111")?, &id, Command::Claim, CommandOptions::default())
        .await;
    match refused {
        Err(Error::Rejected(why)) => println!("refused as expected: {why}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }

    // 5. The community calls the resident back and closes the case.
    clock.advance(HOUR_MS);
    let community = ActorId::staff("cs11")?;
    let callback = Command::Callback {
        satisfaction: Satisfaction::Satisfied,
        solved: true,
        note: "满意".into(),
    };
    engine.execute(&community, &id, callback, CommandOptions::default()).await?;
    engine
        .execute(&community, &id, Command::Close { note: "办结".into() }, CommandOptions::default())
        .await?;

    // 6. The typed feed: this case's events up to the head.
    let mut feed = engine.feed(1, FeedOptions::until_head().case(id.clone()));
    while let Some(item) = feed.next().await {
        let (record, event) = item?;
        println!("  feed {:>3} {}", record.position, event.event_type());
    }

    // 7. The timeline a resident or an official reads.
    let history = engine.history(&id).await?;
    for entry in gridcase_projections::timeline::timeline(&history, &engine.registry()) {
        println!("  {} {} — {}", entry.at, entry.who, entry.what);
    }

    // 8. The community's resolution rate for the month, from the projections.
    let mut set = ProjectionSet::new(Config::default());
    set.catch_up(engine.log()).await?;
    let unit = set.unit_rates("320902001001", Period::parse("2026-03")?, 98.5)?;
    println!(
        "{}: resolution {}/{} (below the 98.5% target: {:?})",
        unit.name, unit.resolution.numerator, unit.resolution.denominator, unit.below_target
    );
    Ok(())
}
