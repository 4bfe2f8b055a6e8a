//! Runs a short simulation on a temporary store and prints the report.
use gridcase_engine::log::SledOptions;
use gridcase_engine::time::ManualClock;
use gridcase_engine::Engine;
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let days: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir()?;
    let cfg = gridcase_sim::SimConfig { days, ..Default::default() };
    let clock = ManualClock::new(cfg.start);
    let engine = Arc::new(
        Engine::open_sled(dir.path(), SledOptions::default(), Arc::new(clock.clone())).await?,
    );
    engine
        .init_org(&gridcase_engine::domain::ActorId::System, &gridcase_sim::org::tinghu())
        .await?;
    let r = gridcase_sim::run(engine.clone(), clock, &cfg, None).await?;
    println!("{r:#?}");
    let v = engine.log().verify().await?;
    println!("verify: {} events", v.events);
    Ok(())
}
