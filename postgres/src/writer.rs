//! The single writer of a store in this process: group commit under the
//! store's advisory lock (the argument for gap-free positions is in the crate
//! docs).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use gridcase_engine::log::group::Group as Decider;
use gridcase_engine::log::group::{check_import, replies, CommittedState, Decision, GroupWrite};
use gridcase_engine::log::LogError;
use gridcase_engine::log::{
    AppendOutcome, AppendRequest, Appended, Durability, Hash, LogHead, RecordedEvent,
};
use gridcase_engine::time::{Clock, Timestamp};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, Config, Statement};

use crate::head::HeadCell;
use crate::sql::{
    channel, column, connect, is_unique_violation, load_head, lock_key, pg, pg_text, to_hash,
    to_u64, Sql,
};
use crate::PgOptions;

/// Tries of one group when it hits a unique violation or a broken connection
/// before its commit; every try re-reads the state it decides on.
const MAX_ATTEMPTS: usize = 3;

/// Record bytes per `INSERT` statement. Only a huge single append is split;
/// the statements share the group's transaction, so it stays atomic, and no
/// array parameter comes near PostgreSQL's 1 GiB value limit.
const MAX_STATEMENT_BYTES: usize = 16 * 1024 * 1024;

/// Bytes an event adds to a group beyond its payload (envelope, names).
const EVENT_OVERHEAD: usize = 128;

/// Work for the writer.
pub(crate) enum Job {
    /// An append, grouped with the others queued with it.
    Append { request: AppendRequest, reply: oneshot::Sender<Result<Appended, LogError>> },
    /// Exported records to append as they are; always a transaction of its own.
    Import { records: Vec<RecordedEvent>, reply: oneshot::Sender<Result<LogHead, LogError>> },
}

/// What the writer commits in one transaction.
enum Group {
    Appends(Vec<(AppendRequest, oneshot::Sender<Result<Appended, LogError>>)>),
    Import(Vec<RecordedEvent>, oneshot::Sender<Result<LogHead, LogError>>),
}

/// The writer's connection and its prepared statements.
struct Conn {
    client: Client,
    begin: Statement,
    commit: Statement,
    rollback: Statement,
    lock: Statement,
    max_position: Statement,
    last_record: Statement,
    stream_versions: Statement,
    idempotency_lookup: Statement,
    insert_events: Statement,
    insert_idempotency: Statement,
    upsert_idempotency: Statement,
    upsert_streams: Statement,
    notify: Statement,
}

impl Conn {
    async fn prepare(
        client: Client,
        schema: &str,
        durability: Durability,
    ) -> Result<Conn, LogError> {
        // The commit is the durability point whatever the server's default
        // (see `PgOptions::durability`); a writer stalled inside a
        // transaction must not hold the store's lock forever, so the server
        // ends such a session.
        let synchronous = match durability {
            Durability::Durable => "on",
            Durability::Flushed | Durability::Buffered => "off",
        };
        client
            .batch_execute(&format!(
                "SET synchronous_commit = {synchronous}; \
                 SET idle_in_transaction_session_timeout = '60s'"
            ))
            .await
            .map_err(|e| pg("cannot configure the writer session", &e))?;
        let sql = Sql::new(schema);
        let prepare = |text: String| {
            let client = &client;
            async move {
                client.prepare(&text).await.map_err(|e| pg("cannot prepare a write statement", &e))
            }
        };
        let (begin, commit, rollback, lock, max_position, last_record) = futures::try_join!(
            prepare("BEGIN ISOLATION LEVEL READ COMMITTED".into()),
            prepare("COMMIT".into()),
            prepare("ROLLBACK".into()),
            prepare("SELECT pg_advisory_xact_lock($1)".into()),
            prepare(sql.max_position),
            prepare(sql.last_record),
        )?;
        let (stream_versions, idempotency_lookup, insert_events, insert_idempotency) = futures::try_join!(
            prepare(sql.stream_versions),
            prepare(sql.idempotency_lookup),
            prepare(sql.insert_events),
            prepare(sql.insert_idempotency),
        )?;
        let (upsert_idempotency, upsert_streams, notify) = futures::try_join!(
            prepare(sql.upsert_idempotency),
            prepare(sql.upsert_streams),
            prepare("SELECT pg_notify($1, $2)".into()),
        )?;
        Ok(Conn {
            client,
            begin,
            commit,
            rollback,
            lock,
            max_position,
            last_record,
            stream_versions,
            idempotency_lookup,
            insert_events,
            insert_idempotency,
            upsert_idempotency,
            upsert_streams,
            notify,
        })
    }
}

/// Why a group's transaction did not commit.
enum Failure {
    /// Nothing was written and a fresh try may succeed.
    Retry(LogError),
    /// Every append of the group fails with this.
    Fatal(LogError),
}

/// The group-commit writer task of one [`crate::PgLog`].
pub(crate) struct Writer {
    cell: Arc<HeadCell>,
    config: Config,
    options: PgOptions,
    lock_key: i64,
    channel: String,
    conn: Option<Conn>,
    clock: Arc<dyn Clock>,
    /// The head as of this writer's last look at the table.
    head: LogHead,
    /// The recorded-at of the record at `head`: no later record goes below it.
    last_recorded: Timestamp,
    rx: mpsc::Receiver<Job>,
    /// An append that did not fit in the previous group.
    carry: Option<Job>,
    id: String,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn new(
        cell: Arc<HeadCell>,
        config: Config,
        options: PgOptions,
        client: Client,
        clock: Arc<dyn Clock>,
        head: LogHead,
        last_recorded: Timestamp,
        rx: mpsc::Receiver<Job>,
        id: String,
    ) -> Result<Writer, LogError> {
        let conn = Conn::prepare(client, &options.schema, options.durability).await?;
        Ok(Writer {
            cell,
            config,
            lock_key: lock_key(&options.schema),
            channel: channel(&options.schema),
            options,
            conn: Some(conn),
            clock,
            head,
            last_recorded,
            rx,
            carry: None,
            id,
        })
    }

    /// Runs until every sender is gone and the queue is drained.
    pub(crate) async fn run(mut self) {
        while let Some(group) = self.next_group().await {
            match group {
                Group::Appends(jobs) => {
                    let requests: Vec<&AppendRequest> = jobs.iter().map(|(r, _)| r).collect();
                    let results = self.commit_appends(&requests).await;
                    for ((_, reply), result) in jobs.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Group::Import(records, reply) => {
                    let result = self.commit_import(&records).await;
                    let _ = reply.send(result);
                }
            }
        }
    }

    /// `[write 4]`: waits for one job, then takes every other append
    /// already queued, up to the group limits. An import goes alone.
    async fn next_group(&mut self) -> Option<Group> {
        let first = match self.carry.take() {
            Some(job) => job,
            None => self.rx.recv().await?,
        };
        let (request, reply) = match first {
            Job::Import { records, reply } => return Some(Group::Import(records, reply)),
            Job::Append { request, reply } => (request, reply),
        };
        let mut bytes = request_bytes(&request);
        let mut jobs = vec![(request, reply)];
        while jobs.len() < self.options.max_group_requests {
            let Ok(job) = self.rx.try_recv() else { break };
            match job {
                Job::Append { request, reply }
                    if bytes + request_bytes(&request) <= self.options.max_group_bytes =>
                {
                    bytes += request_bytes(&request);
                    jobs.push((request, reply));
                }
                other => {
                    self.carry = Some(other);
                    break;
                }
            }
        }
        Some(Group::Appends(jobs))
    }

    /// `[write 5]` to `[write 8]` on PostgreSQL: decides the group with the
    /// shared core and commits it in one transaction (durable per the
    /// session's `synchronous_commit`), retrying with fresh state when that
    /// can help; the replies carry the records.
    async fn commit_appends(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Vec<Result<Appended, LogError>> {
        let mut last = LogError::Internal("no attempt was made".into());
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt_appends(requests).await {
                Ok(results) => return results,
                Err(Failure::Fatal(e)) => {
                    tracing::error!(error = %e, "append group failed");
                    return vec![Err(e); requests.len()];
                }
                Err(Failure::Retry(e)) => {
                    tracing::warn!(error = %e, attempt, "append group rolled back; retrying with fresh state");
                    last = e;
                    backoff(attempt).await;
                }
            }
        }
        vec![Err(last); requests.len()]
    }

    /// Commits one import, retrying with fresh state when that can help.
    async fn commit_import(&mut self, records: &[RecordedEvent]) -> Result<LogHead, LogError> {
        let mut last = LogError::Internal("no attempt was made".into());
        for attempt in 1..=MAX_ATTEMPTS {
            match self.attempt_import(records).await {
                Ok(result) => return result,
                Err(Failure::Fatal(e)) => {
                    tracing::error!(error = %e, "import failed");
                    return Err(e);
                }
                Err(Failure::Retry(e)) => {
                    tracing::warn!(error = %e, attempt, "import rolled back; retrying with fresh state");
                    last = e;
                    backoff(attempt).await;
                }
            }
        }
        Err(last)
    }

    /// The connection, opened again if it broke.
    async fn connection(&mut self) -> Result<&Conn, LogError> {
        if self.conn.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.conn = None;
            let client = connect(&self.config, "writer", &self.options.schema).await?;
            self.conn =
                Some(Conn::prepare(client, &self.options.schema, self.options.durability).await?);
        }
        self.conn.as_ref().ok_or_else(|| LogError::Internal("writer connection missing".into()))
    }

    /// Ends the open transaction. A connection that cannot even roll back is
    /// dropped, so that the next try starts on a clean session.
    async fn rollback(&mut self) {
        if let Some(c) = &self.conn {
            if c.client.is_closed() || c.client.execute(&c.rollback, &[]).await.is_err() {
                self.conn = None;
            }
        }
    }

    /// Ends a failed transaction and says whether a retry may help.
    async fn fail(&mut self, context: &str, e: &tokio_postgres::Error) -> Failure {
        let closed = self.conn.as_ref().is_none_or(|c| c.client.is_closed());
        self.rollback().await;
        if closed || is_unique_violation(e) {
            Failure::Retry(pg(context, e))
        } else {
            Failure::Fatal(pg(context, e))
        }
    }

    /// Like [`Writer::fail`] for an error of ours (a bad head record).
    async fn abort(&mut self, err: LogError) -> Failure {
        self.rollback().await;
        Failure::Fatal(err)
    }

    /// Begins a group's transaction, takes the store lock and reads, after
    /// the lock is granted, the head and the state of `streams` and `keys`.
    /// The statements are pipelined: one round trip. On return the writer's
    /// head is the table's.
    async fn begin<'a>(
        &mut self,
        streams: &[&'a str],
        keys: &[&'a [u8]],
    ) -> Result<Snapshot<'a>, Failure> {
        let lock_key = self.lock_key;
        let c = self.connection().await.map_err(Failure::Retry)?;
        let (begin, lock, max, versions, found) = futures::join!(
            c.client.execute(&c.begin, &[]),
            async { c.client.execute(&c.lock, &[&lock_key]).await },
            c.client.query_one(&c.max_position, &[]),
            async { c.client.query(&c.stream_versions, &[&streams]).await },
            async {
                if keys.is_empty() {
                    Ok(Vec::new())
                } else {
                    c.client.query(&c.idempotency_lookup, &[&keys]).await
                }
            },
        );
        let read = (|| {
            begin?;
            lock?;
            Ok::<_, tokio_postgres::Error>((max?, versions?, found?))
        })();
        let (max, versions, found) = match read {
            Ok(r) => r,
            Err(e) => return Err(self.fail("cannot start a write transaction", &e).await),
        };
        let snapshot = (|| {
            let max = to_u64(column::<i64>(&max, 0, 0)?, 0, "position")?;
            let mut current: HashMap<&'a str, u64> = HashMap::with_capacity(streams.len());
            for row in &versions {
                let name: &str = column(row, 0, 0)?;
                let v = to_u64(column::<i64>(row, 1, 0)?, 0, "stream version")?;
                if let Some(s) = streams.iter().find(|s| **s == name) {
                    current.insert(*s, v);
                }
            }
            let mut known: HashMap<&'a [u8], (Hash, AppendOutcome)> = HashMap::new();
            for row in &found {
                let key: &[u8] = column(row, 0, 0)?;
                let first = to_u64(column::<i64>(row, 2, 0)?, 0, "position")?;
                let outcome = AppendOutcome {
                    first_position: first,
                    last_position: to_u64(column::<i64>(row, 3, first)?, first, "position")?,
                    last_version: to_u64(column::<i64>(row, 4, first)?, first, "version")?,
                    recorded_at: Timestamp(column::<i64>(row, 5, first)?),
                    deduplicated: false,
                };
                let digest = to_hash(column::<&[u8]>(row, 1, first)?, first)?;
                if let Some(k) = keys.iter().find(|k| **k == key) {
                    known.insert(*k, (digest, outcome));
                }
            }
            Ok::<_, LogError>((max, Snapshot { current, known }))
        })();
        let (max, snapshot) = match snapshot {
            Ok(s) => s,
            Err(e) => return Err(self.abort(e).await),
        };

        // Another writer appended since our last group (or our last commit's
        // outcome was unknown): take the head from the table.
        if max != self.head.position {
            let c = self.conn.as_ref().ok_or_else(|| Failure::Retry(closed()))?;
            match load_head(&c.client, &c.last_record).await {
                Ok((head, last_recorded)) if head.position == max => {
                    self.head = head;
                    self.last_recorded = last_recorded;
                    self.cell.advance(head);
                }
                Ok((head, _)) => {
                    let e = LogError::Internal(format!(
                        "head moved from {max} to {} under the store lock",
                        head.position
                    ));
                    return Err(self.abort(e).await);
                }
                Err(e) => return Err(self.abort(e).await),
            }
        }
        Ok(snapshot)
    }

    /// Writes a group's rows and commits (phase 2, pipelined), then moves
    /// the head to `next`. `replace_keys` overwrites idempotency entries (an
    /// import: the later record's mark wins, as when the sled index is rebuilt).
    async fn write(&mut self, write: &GroupWrite, replace_keys: bool) -> Result<(), Failure> {
        let (next, recorded) = (write.head, write.recorded_at);
        let rows = Rows::of(write);
        let c = self.conn.as_ref().ok_or_else(|| Failure::Retry(closed()))?;
        let notify_payload = format!("{} {}", self.id, next.position);
        let channel = self.channel.as_str();
        let listen = self.options.listen;
        let (stream_names, stream_versions) = (&rows.stream_names, &rows.stream_versions);
        let keys: Vec<&[u8]> = write.keys.keys().map(|k| k.as_bytes()).collect();
        let outcomes = write.keys.values().map(|(_, o)| o);
        let firsts: Vec<i64> = outcomes.clone().map(|o| o.first_position as i64).collect();
        let lasts: Vec<i64> = outcomes.clone().map(|o| o.last_position as i64).collect();
        let last_versions: Vec<i64> = outcomes.clone().map(|o| o.last_version as i64).collect();
        let recorded_at: Vec<i64> = outcomes.map(|o| o.recorded_at.0).collect();
        let hashes = &rows.hashes;
        let digests: Vec<&[u8]> = write.keys.values().map(|(d, _)| &d[..]).collect();
        let keys_statement =
            if replace_keys { &c.upsert_idempotency } else { &c.insert_idempotency };
        let expected_rows = rows.positions.len() as u64;
        let (inserted, keyed, streamed, notified) = futures::join!(
            async {
                let mut inserted = 0;
                for (a, b) in chunks(&rows.records) {
                    inserted += c
                        .client
                        .execute(
                            &c.insert_events,
                            &[
                                &&rows.positions[a..b],
                                &&rows.streams[a..b],
                                &&rows.versions[a..b],
                                &&hashes[a..b],
                                &&rows.records[a..b],
                            ],
                        )
                        .await?;
                }
                Ok::<_, tokio_postgres::Error>(inserted)
            },
            async {
                if keys.is_empty() {
                    Ok(0)
                } else {
                    c.client
                        .execute(
                            keys_statement,
                            &[&keys, &digests, &firsts, &lasts, &last_versions, &recorded_at],
                        )
                        .await
                }
            },
            async { c.client.execute(&c.upsert_streams, &[stream_names, stream_versions]).await },
            async {
                if listen {
                    c.client.execute(&c.notify, &[&channel, &notify_payload]).await
                } else {
                    Ok(0)
                }
            },
        );
        let written = (|| {
            let inserted = inserted?;
            keyed?;
            streamed?;
            notified?;
            Ok::<_, tokio_postgres::Error>(inserted)
        })();
        match written {
            Ok(n) if n == expected_rows => {}
            Ok(n) => {
                let e = LogError::Internal(format!("inserted {n} of {expected_rows} events"));
                return Err(self.abort(e).await);
            }
            Err(e) => return Err(self.fail("cannot write", &e).await),
        }

        match c.client.execute(&c.commit, &[]).await {
            Ok(_) => {}
            Err(e) if e.as_db_error().is_some() => {
                // The server refused the commit: the transaction rolled back.
                return Err(self.fail("cannot commit", &e).await);
            }
            Err(e) => {
                // The COMMIT may or may not have happened. The next group
                // re-reads the head, so this writer stays right either way;
                // the callers are told, and a keyed retry is safe.
                self.conn = None;
                return Err(Failure::Fatal(LogError::Storage(format!(
                    "postgres: connection lost while committing ({}); the appends may or may \
                     not be stored: retry them with their idempotency keys",
                    pg_text(&e)
                ))));
            }
        }
        self.head = next;
        self.last_recorded = recorded;
        self.cell.advance(next);
        Ok(())
    }

    async fn attempt_appends(
        &mut self,
        requests: &[&AppendRequest],
    ) -> Result<Vec<Result<Appended, LogError>>, Failure> {
        let streams: Vec<&str> = requests
            .iter()
            .map(|r| r.stream.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let keys: Vec<&[u8]> = requests
            .iter()
            .filter_map(|r| r.idempotency_key.as_deref().map(str::as_bytes))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let snapshot = self.begin(&streams, &keys).await?;

        // Decide every append in memory.
        let mut group = Decider::new(self.head, self.last_recorded, self.clock.now());
        let decisions: Vec<Decision> =
            requests.iter().map(|req| group.decide(req, &snapshot)).collect();
        let write = group.into_write();
        if write.records.is_empty() {
            // Nothing to write: end the read-only transaction and answer.
            self.rollback().await;
        } else {
            self.write(&write, false).await?;
        }
        Ok(replies(decisions, write.records, Ok(())))
    }

    async fn attempt_import(
        &mut self,
        records: &[RecordedEvent],
    ) -> Result<Result<LogHead, LogError>, Failure> {
        let streams: Vec<&str> = records
            .iter()
            .map(|r| r.stream.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let snapshot = self.begin(&streams, &[]).await?;
        match check_import(records, self.head, self.last_recorded, &snapshot) {
            Ok(write) => {
                self.write(&write, true).await?;
                Ok(Ok(write.head))
            }
            Err(e) => {
                self.rollback().await;
                Ok(Err(e))
            }
        }
    }
}

/// The state a group decides on, read under the store lock.
struct Snapshot<'a> {
    /// Last version of the group's streams that exist.
    current: HashMap<&'a str, u64>,
    /// The group's idempotency keys already used.
    known: HashMap<&'a [u8], (Hash, AppendOutcome)>,
}

impl CommittedState for Snapshot<'_> {
    fn stream_version(&self, stream: &str) -> Result<u64, LogError> {
        Ok(self.current.get(stream).copied().unwrap_or(0))
    }

    fn idempotency(&self, key: &str) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
        Ok(self.known.get(key.as_bytes()).copied())
    }
}

/// A group's write as the column arrays of its `INSERT`s.
struct Rows<'a> {
    positions: Vec<i64>,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    hashes: Vec<&'a [u8]>,
    records: Vec<&'a [u8]>,
    /// Last version of every stream the group writes, as the `streams` rows.
    stream_names: Vec<&'a str>,
    stream_versions: Vec<i64>,
}

impl<'a> Rows<'a> {
    /// The columns of `write`. Positions and versions fit a `bigint`: the
    /// group core assigns none past `i64::MAX`.
    fn of(write: &'a GroupWrite) -> Rows<'a> {
        let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let records = write.records.iter();
        Rows {
            positions: records.clone().map(|c| big(c.record.position)).collect(),
            streams: records.clone().map(|c| c.record.stream.as_str()).collect(),
            versions: records.clone().map(|c| big(c.record.version)).collect(),
            hashes: records.clone().map(|c| &c.record.hash[..]).collect(),
            records: records.map(|c| c.bytes.as_slice()).collect(),
            stream_names: write.stream_heads.keys().map(String::as_str).collect(),
            stream_versions: write.stream_heads.values().map(|v| big(*v)).collect(),
        }
    }
}

/// A short pause before another try, so that a restarting server or a
/// dropped connection has a moment to come back.
async fn backoff(attempt: usize) {
    if attempt < MAX_ATTEMPTS {
        tokio::time::sleep(std::time::Duration::from_millis(50 * attempt as u64)).await;
    }
}

fn closed() -> LogError {
    LogError::Storage("postgres: the writer connection closed".into())
}

fn request_bytes(request: &AppendRequest) -> usize {
    request.events.iter().map(|e| e.payload.len() + e.event_type.len() + EVENT_OVERHEAD).sum()
}

/// Index ranges of `records` of at most [`MAX_STATEMENT_BYTES`] each (at
/// least one record each).
fn chunks<B: AsRef<[u8]>>(records: &[B]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in records.iter().enumerate() {
        let r = r.as_ref();
        if i > start && bytes + r.len() > MAX_STATEMENT_BYTES {
            out.push((start, i));
            start = i;
            bytes = 0;
        }
        bytes += r.len();
    }
    if start < records.len() {
        out.push((start, records.len()));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn chunks_cover_everything_in_order() {
        assert!(chunks::<Vec<u8>>(&[]).is_empty());
        let small = vec![vec![0u8; 10]; 5];
        assert_eq!(chunks(&small), vec![(0, 5)]);
        let big = vec![vec![0u8; MAX_STATEMENT_BYTES / 2 + 1]; 5];
        assert_eq!(chunks(&big), vec![(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]);
        let huge = vec![vec![0u8; MAX_STATEMENT_BYTES + 1]];
        assert_eq!(chunks(&huge), vec![(0, 1)]);
    }
}
