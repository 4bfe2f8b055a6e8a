//! Checks whether large appends make sled write blob files (which sled 0.34
//! does not fsync): appends `N` batches of 1,000 events of 256 bytes with a
//! given frame byte cap, then counts files under `blobs/`.
use std::sync::Arc;

use gridcase_engine::log::{
    AppendRequest, EventData, EventLog, ExpectedVersion, SledLog, SledOptions, StreamId,
    CODEC_POSTCARD,
};
use gridcase_engine::time::SystemClock;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cap: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(192 * 1024);
    let dir = tempfile::tempdir()?;
    let log = Arc::new(SledLog::open(
        dir.path(),
        SledOptions { max_frame_bytes: cap, ..SledOptions::default() },
        Arc::new(SystemClock),
    )?);
    let mut max_blobs = 0;
    for round in 0..20 {
        let mut tasks = Vec::new();
        for t in 0..16 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                let events = (0..1000)
                    .map(|_| EventData {
                        event_type: "F".into(),
                        schema_version: 1,
                        payload_codec: CODEC_POSTCARD,
                        payload: vec![7; 256],
                    })
                    .collect();
                log.append(AppendRequest::new(
                    StreamId::new(format!("s{t}-{round}")).unwrap_or_else(|_| unreachable!()),
                    ExpectedVersion::Any,
                    "p",
                    events,
                ))
                .await
            }));
        }
        for t in tasks {
            t.await??;
        }
        let blobs = std::fs::read_dir(dir.path().join("blobs")).map(|d| d.count()).unwrap_or(0);
        max_blobs = max_blobs.max(blobs);
    }
    println!("frame cap {cap} bytes: up to {max_blobs} blob files while running");
    Ok(())
}
