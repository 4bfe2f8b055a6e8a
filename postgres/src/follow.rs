//! The follower: notices appends made by other writers of the same store
//! (other processes, or other `PgLog`s) and moves this process's head and
//! head watch, so that subscriptions here see them.
//!
//! It listens on the store's notification channel and also polls every
//! `poll_interval`, because notifications are best effort (a dropped
//! listening connection loses them) and because a writer may run with
//! `listen` off. It keeps its own connection: `LISTEN` needs a session that
//! is driven by hand to receive notifications.

use std::sync::Weak;

use futures::StreamExt;
use gridcase_engine::log::LogError;
use gridcase_engine::log::LogHead;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement};

use crate::head::HeadCell;
use crate::sql::{channel, column, pg, pg_text, session_config, to_hash, to_u64, Sql};
use crate::PgOptions;

/// The follower's session: its client, the statement it polls with, and the
/// notifications its connection task forwards.
struct Session {
    client: Client,
    last_hash: Statement,
    notes: mpsc::UnboundedReceiver<String>,
}

impl Session {
    async fn open(config: &Config, options: &PgOptions) -> Result<Session, LogError> {
        let config = session_config(config, "follower", &options.schema);
        let (client, mut connection) =
            config.connect(NoTls).await.map_err(|e| pg("follower cannot connect", &e))?;
        let (tx, notes) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(n)) => {
                        if tx.send(n.payload().to_string()).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %pg_text(&e), "follower connection ended");
                        return;
                    }
                }
            }
        });
        let last_hash = client
            .prepare(&Sql::new(&options.schema).last_hash)
            .await
            .map_err(|e| pg("follower cannot prepare", &e))?;
        if options.listen {
            client
                .batch_execute(&format!(r#"LISTEN "{}""#, channel(&options.schema)))
                .await
                .map_err(|e| pg("follower cannot listen", &e))?;
        }
        Ok(Session { client, last_hash, notes })
    }

    /// Reads the table's head and moves `cell` to it if it is further.
    async fn check(&self, cell: &HeadCell) -> Result<(), LogError> {
        let row = self
            .client
            .query_opt(&self.last_hash, &[])
            .await
            .map_err(|e| pg("follower cannot read the head", &e))?;
        if let Some(row) = row {
            let position = to_u64(column::<i64>(&row, 0, 0)?, 0, "position")?;
            let hash = to_hash(column::<&[u8]>(&row, 1, position)?, position)?;
            cell.advance(LogHead { position, hash });
        }
        Ok(())
    }
}

/// Whether a notification payload (`writer-id position`) can tell us
/// anything: not our own writer's, and past the head we know.
fn is_news(payload: &str, own_id: &str, known: u64) -> bool {
    let mut parts = payload.split(' ');
    let (Some(id), Some(position)) = (parts.next(), parts.next()) else { return true };
    id != own_id && position.parse::<u64>().map_or(true, |p| p > known)
}

/// Runs until the log is dropped (its cell is gone) or the task is aborted.
pub(crate) async fn follow(
    cell: Weak<HeadCell>,
    config: Config,
    options: PgOptions,
    own_id: String,
) {
    let mut tick = tokio::time::interval(options.poll_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let mut session = match Session::open(&config, &options).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "log follower cannot connect; polling again later");
                tick.tick().await;
                if cell.strong_count() == 0 {
                    return;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                note = session.notes.recv() => match note {
                    Some(payload) => {
                        let known = match cell.upgrade() {
                            Some(c) => c.get().position,
                            None => return,
                        };
                        let mut news = is_news(&payload, &own_id, known);
                        while let Ok(more) = session.notes.try_recv() {
                            news |= is_news(&more, &own_id, known);
                        }
                        if !news {
                            continue;
                        }
                    }
                    // The connection ended; open a new session.
                    None => break,
                },
                _ = tick.tick() => {}
            }
            let Some(c) = cell.upgrade() else { return };
            if let Err(e) = session.check(&c).await {
                tracing::warn!(error = %e, "log follower failed; reconnecting");
                break;
            }
        }
        tick.tick().await;
        if cell.strong_count() == 0 {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn news_filter() {
        assert!(!is_news("me 10", "me", 5));
        assert!(is_news("other 10", "me", 5));
        assert!(!is_news("other 5", "me", 5));
        assert!(is_news("garbage", "me", 5));
    }
}
