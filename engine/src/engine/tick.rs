//! Deadline ticks: every deadline passed at `now` becomes a recorded
//! automatic escalation, dispatch or overdue mark.

use futures::stream::StreamExt;
use serde::{Deserialize, Serialize};

use super::{CommandOptions, Engine};
use crate::domain::{ActorId, Command, Event};
use crate::time::Timestamp;
use crate::Error;

/// Deadline checks in flight at once during a tick.
const TICK_CONCURRENCY: usize = 256;

/// What a deadline pass did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    /// Cases whose deadlines were checked.
    pub checked: u64,
    /// Events recorded.
    pub events: u64,
    /// Automatic escalations to a street.
    pub escalations: u64,
    /// Automatic dispatches to a department.
    pub dispatches: u64,
    /// Overdue marks.
    pub overdue_marks: u64,
}

impl Engine {
    /// Records every deadline passed at `now` (automatic escalation,
    /// dispatch to the category's department, overdue marks). Deadlines are
    /// derived from the log, so after a restart nothing is missed, and the
    /// appends are version-checked, so nothing fires twice.
    ///
    /// A `now` before the log's last record is refused like any command's
    /// time (see [`Engine::execute`]): the deadline events would be
    /// recorded later than the time their new deadlines count from.
    pub async fn tick(&self, now: Timestamp) -> Result<TickReport, Error> {
        self.catch_up().await?;
        self.command_time(Some(now))?;
        let due: Vec<String> = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.deadlines
                .range(..=(now, String::from("\u{10FFFF}")))
                .map(|(_, id)| id.clone())
                .collect()
        };
        // Due cases are independent streams, so their checks run concurrently:
        // each waits for a group commit, and serially they would wait for one
        // flush each.
        let mut report = TickReport::default();
        let mut checks = futures::stream::iter(due.into_iter().map(|id| async move {
            self.execute_at(
                &ActorId::System,
                Some(&id),
                Command::CheckDeadlines,
                CommandOptions::default(),
                Some(now),
            )
            .await
        }))
        .buffer_unordered(TICK_CONCURRENCY);
        while let Some(r) = checks.next().await {
            let r = r?;
            report.checked += 1;
            for e in &r.events {
                report.events += 1;
                match e {
                    Event::CaseEscalated { .. } => report.escalations += 1,
                    Event::CaseDispatched { .. } => report.dispatches += 1,
                    Event::CaseOverdue { .. } => report.overdue_marks += 1,
                    _ => {}
                }
            }
        }
        Ok(report)
    }
}
