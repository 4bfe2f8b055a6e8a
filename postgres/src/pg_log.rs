//! [`PgLog`]: opening a store and the read side of the [`EventLog`] contract.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use gridcase_engine::log::LogError;
use gridcase_engine::log::{
    decode_record, read_back_duplicate, AppendOutcome, AppendRequest, Appended, ChainVerifier,
    EventLog, Hash, LogHead, Position, RecordView, RecordedEvent, StreamId, VerifyReport,
};
use gridcase_engine::time::{Clock, Timestamp};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::Config;

use crate::head::HeadCell;
use crate::pool::ReadPool;
use crate::sql::{
    column, connect, decode_linked_row, describe_config, ensure_schema, load_head, pg,
    prefix_upper_bound, to_hash, to_i64, to_u64, validate_schema, Sql,
};
use crate::writer::{Job, Writer};
use crate::{follow, PgOptions};
use gridcase_engine::log::check_append;
use gridcase_engine::log::group::ask_writer;

/// Rows per query when `verify` walks the table.
const VERIFY_PAGE: i64 = 2048;

/// The PostgreSQL-backed [`EventLog`]; see the crate docs for the design.
///
/// It must be used within the tokio runtime it was opened in (its writer,
/// follower and connections are tasks of that runtime). Dropping it stops the
/// follower at once and the writer after it committed what was queued.
pub struct PgLog {
    cell: Arc<HeadCell>,
    reads: ReadPool,
    schema: String,
    describe: String,
    tx: mpsc::Sender<Job>,
    follower: JoinHandle<()>,
}

impl Drop for PgLog {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// A name for this log's writer in `NOTIFY` payloads, so that its own
/// follower can ignore its own commits.
fn writer_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let seed =
        format!("{}/{nanos}/{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
    gridcase_engine::log::hex(blake3::hash(seed.as_bytes()).as_bytes())[..16].to_string()
}

impl PgLog {
    /// Opens (or creates) the store in `options.schema` of the database at
    /// `url` (`postgres://user:password@host:port/db`, or the key=value form):
    /// creates the schema and tables if needed, refuses a newer format, reads
    /// the head, and starts the writer and the follower.
    pub async fn open(
        url: &str,
        options: PgOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<PgLog, LogError> {
        validate_schema(&options.schema)?;
        if options.max_group_requests == 0 || options.queue_depth == 0 {
            return Err(LogError::InvalidInput(
                "max_group_requests and queue_depth must be at least 1".into(),
            ));
        }
        let config: Config =
            url.parse().map_err(|e| LogError::InvalidInput(format!("bad PostgreSQL URL: {e}")))?;
        let schema = options.schema.clone();

        let client = connect(&config, "writer", &schema).await?;
        ensure_schema(&client, &schema).await?;
        let last_record = client
            .prepare(&Sql::new(&schema).last_record)
            .await
            .map_err(|e| pg("cannot prepare the head query", &e))?;
        let (head, last_recorded) = load_head(&client, &last_record).await?;
        let reads = ReadPool::open(&config, &schema, options.read_connections).await?;

        let cell = Arc::new(HeadCell::new(head));
        let id = writer_id();
        let (tx, rx) = mpsc::channel(options.queue_depth);
        let writer = Writer::new(
            cell.clone(),
            config.clone(),
            options.clone(),
            client,
            clock,
            head,
            last_recorded,
            rx,
            id.clone(),
        )
        .await?;
        tokio::spawn(writer.run());
        let follower = tokio::spawn(follow::follow(
            Arc::downgrade(&cell),
            config.clone(),
            options.clone(),
            id,
        ));
        Ok(PgLog {
            cell,
            reads,
            describe: format!("postgres:{} schema {schema}", describe_config(&config)),
            schema,
            tx,
            follower,
        })
    }

    /// The schema holding this store.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// Test and audit hook: flips one byte of the stored record at
    /// `position` (byte `byte` of its canonical bytes, or the last one if the
    /// record is shorter) behind the log's back, the stored hash untouched.
    /// Used to prove that tampering is detected; it bypasses the chain on
    /// purpose, like `SledLog::tamper_for_test`. Only in builds with the
    /// `test-hooks` feature.
    #[cfg(feature = "test-hooks")]
    pub async fn tamper_for_test(&self, position: Position, byte: usize) -> Result<(), LogError> {
        let position = to_i64(position, "position")?;
        let byte = i32::try_from(byte).unwrap_or(i32::MAX);
        let sql = format!(
            r#"UPDATE "{s}".events
               SET record = set_byte(record, least($2::int, length(record) - 1),
                                     get_byte(record, least($2::int, length(record) - 1)) # 1)
               WHERE position = $1"#,
            s = self.schema
        );
        let sql = sql.as_str();
        let n = self
            .reads
            .run(|c| async move {
                c.client
                    .execute(sql, &[&position, &byte])
                    .await
                    .map_err(|e| pg("cannot tamper with a record", &e))
            })
            .await?;
        if n == 0 {
            return Err(LogError::InvalidInput(format!("no event at position {position}")));
        }
        Ok(())
    }

    /// Deletes the store in `schema` of the database at `url` and everything
    /// in it (`DROP SCHEMA … CASCADE`); nothing happens if there is none.
    /// For tests and for tooling that removes a store: there is no undo, and
    /// a log still open on the store fails from then on.
    pub async fn drop_store(url: &str, schema: &str) -> Result<(), LogError> {
        validate_schema(schema)?;
        let config: Config =
            url.parse().map_err(|e| LogError::InvalidInput(format!("bad PostgreSQL URL: {e}")))?;
        let client = connect(&config, "admin", schema).await?;
        client
            .batch_execute(&format!(r#"DROP SCHEMA IF EXISTS "{schema}" CASCADE"#))
            .await
            .map_err(|e| pg(&format!("cannot drop schema {schema}"), &e))
    }
}

#[async_trait]
impl EventLog for PgLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        check_append(&request)?;
        let appended = ask_writer(&self.tx, |reply| Job::Append { request, reply }).await?;
        read_back_duplicate(self, appended).await
    }

    async fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = to_i64(from_version.max(1), "version")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.reads
            .run(|c| async move {
                let rows = c
                    .client
                    .query(&c.read_stream, &[&stream.as_str(), &from, &limit])
                    .await
                    .map_err(|e| pg("cannot read a stream", &e))?;
                rows.iter().map(decode_linked_row).collect()
            })
            .await
    }

    async fn read_all(&self, from: Position, limit: usize) -> Result<Vec<RecordedEvent>, LogError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let from = from.max(1);
        // The page starts one record early: the record before `from` seeds
        // the chain check and is not served, so the first record's link is
        // checked against its predecessor's bytes, as every later one is.
        let start = from - 1;
        let start_i = to_i64(start.max(1), "position")?;
        let rows_wanted = limit.saturating_add(usize::from(start > 0));
        let rows_wanted = i64::try_from(rows_wanted).unwrap_or(i64::MAX);
        self.reads
            .run(|c| async move {
                let rows = c
                    .client
                    .query(&c.read_all, &[&start_i, &rows_wanted])
                    .await
                    .map_err(|e| pg("cannot read the log", &e))?;
                let mut chain = (start == 0).then(ChainVerifier::default);
                let mut events = Vec::with_capacity(rows.len());
                // Positions are gap-free, so a page that does not run on
                // from `start` has lost a record; say so rather than let a
                // subscriber skip it.
                for (i, row) in rows.iter().enumerate() {
                    let expected = start.max(1) + i as u64;
                    let position = to_u64(column::<i64>(row, 0, expected)?, expected, "position")?;
                    if position != expected {
                        return Err(LogError::Corruption {
                            position: expected,
                            reason: format!("record missing: the next stored record is {position}"),
                        });
                    }
                    let bytes: &[u8] = column(row, 1, position)?;
                    let stored: &[u8] = column(row, 2, position)?;
                    let view = RecordView::decode_checked(bytes, position, stored)?;
                    match &mut chain {
                        Some(chain) => chain.check_view(&view)?,
                        None => {
                            // The predecessor: checked, then it seeds the chain.
                            ChainVerifier::resume(position, view.prev_hash).check_view(&view)?;
                            chain = Some(ChainVerifier::resume(position + 1, view.hash));
                            continue;
                        }
                    }
                    events.push(view.to_owned());
                }
                Ok(events)
            })
            .await
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<u64, LogError> {
        self.reads
            .run(|c| async move {
                let row = c
                    .client
                    .query_opt(&c.stream_version, &[&stream.as_str()])
                    .await
                    .map_err(|e| pg("cannot read a stream version", &e))?;
                match row {
                    Some(row) => to_u64(column::<i64>(&row, 0, 0)?, 0, "stream version"),
                    None => Ok(0),
                }
            })
            .await
    }

    async fn streams_with_prefix(&self, prefix: &str) -> Result<Vec<String>, LogError> {
        let upper = prefix_upper_bound(prefix);
        let upper = upper.as_deref();
        self.reads
            .run(|c| async move {
                let rows = match upper {
                    Some(upper) => c.client.query(&c.streams_between, &[&prefix, &upper]).await,
                    None => c.client.query(&c.streams_from, &[&prefix]).await,
                }
                .map_err(|e| pg("cannot list streams", &e))?;
                let mut names = Vec::with_capacity(rows.len());
                for row in &rows {
                    let name: String = column(row, 0, 0)?;
                    if name.starts_with(prefix) {
                        names.push(name);
                    }
                }
                Ok(names)
            })
            .await
    }

    async fn import(&self, records: Vec<RecordedEvent>) -> Result<LogHead, LogError> {
        if records.is_empty() {
            return Ok(self.head());
        }
        ask_writer(&self.tx, |reply| Job::Import { records, reply }).await
    }

    async fn idempotency_lookup(
        &self,
        key: &str,
    ) -> Result<Option<(Hash, AppendOutcome)>, LogError> {
        self.reads
            .run(|c| async move {
                let row = c
                    .client
                    .query_opt(&c.idempotency_one, &[&key.as_bytes()])
                    .await
                    .map_err(|e| pg("cannot read an idempotency key", &e))?;
                let Some(row) = row else { return Ok(None) };
                let first = to_u64(column::<i64>(&row, 1, 0)?, 0, "position")?;
                let digest = to_hash(column::<&[u8]>(&row, 0, first)?, first)?;
                let outcome = AppendOutcome {
                    first_position: first,
                    last_position: to_u64(column::<i64>(&row, 2, first)?, first, "position")?,
                    last_version: to_u64(column::<i64>(&row, 3, first)?, first, "version")?,
                    recorded_at: Timestamp(column::<i64>(&row, 4, first)?),
                    deduplicated: false,
                };
                Ok(Some((digest, outcome)))
            })
            .await
    }

    fn head(&self) -> LogHead {
        self.cell.get()
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.cell.subscribe()
    }

    async fn verify(&self) -> Result<VerifyReport, LogError> {
        let mut verifier = ChainVerifier::default();
        loop {
            let after = to_i64(verifier.head_position(), "position")?;
            let rows = self
                .reads
                .run(|c| async move {
                    c.client
                        .query(&c.verify_page, &[&after, &VERIFY_PAGE])
                        .await
                        .map_err(|e| pg("cannot read the log", &e))
                })
                .await?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let expected = verifier.head_position() + 1;
                let position = to_u64(column::<i64>(row, 0, expected)?, expected, "position")?;
                if position != expected {
                    return Err(LogError::Corruption {
                        position: expected,
                        reason: format!("record missing: the next stored record is {position}"),
                    });
                }
                let stream: &str = column(row, 1, position)?;
                let version = to_u64(column::<i64>(row, 2, position)?, position, "version")?;
                let stored = to_hash(column::<&[u8]>(row, 3, position)?, position)?;
                let bytes: &[u8] = column(row, 4, position)?;
                let ev = decode_record(bytes, position)?;
                if ev.hash != stored {
                    return Err(LogError::Corruption {
                        position,
                        reason: "record bytes do not match their stored hash".into(),
                    });
                }
                if ev.stream != stream || ev.version != version {
                    return Err(LogError::Corruption {
                        position,
                        reason: format!(
                            "row says {stream} v{version}, its record says {} v{}",
                            ev.stream, ev.version
                        ),
                    });
                }
                verifier.check(&ev)?;
            }
        }
        Ok(VerifyReport {
            events: verifier.events(),
            head: LogHead { position: verifier.head_position(), hash: verifier.head_hash() },
        })
    }

    async fn size_on_disk(&self) -> Result<u64, LogError> {
        let schema = self.schema.as_str();
        self.reads
            .run(|c| async move {
                let row = c
                    .client
                    .query_one(&c.size, &[&schema])
                    .await
                    .map_err(|e| pg("cannot read the store size", &e))?;
                let bytes: i64 = column(&row, 0, 0)?;
                Ok(u64::try_from(bytes).unwrap_or(0))
            })
            .await
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    async fn save_checkpoint(&self, name: &str, bytes: Vec<u8>) -> Result<(), LogError> {
        // The table is made on first use, so stores created before
        // checkpoints existed gain it without a migration.
        let create = format!(
            r#"CREATE TABLE IF NOT EXISTS "{s}".checkpoints (name text PRIMARY KEY, body bytea NOT NULL)"#,
            s = self.schema
        );
        let upsert = format!(
            r#"INSERT INTO "{s}".checkpoints (name, body) VALUES ($1, $2)
               ON CONFLICT (name) DO UPDATE SET body = EXCLUDED.body"#,
            s = self.schema
        );
        let (create, upsert, bytes) = (&create, &upsert, &bytes);
        self.reads
            .run(|c| async move {
                c.client
                    .batch_execute(create)
                    .await
                    .map_err(|e| pg("cannot create the checkpoints table", &e))?;
                c.client
                    .execute(upsert.as_str(), &[&name, bytes])
                    .await
                    .map_err(|e| pg("cannot save a checkpoint", &e))?;
                Ok(())
            })
            .await
    }

    async fn load_checkpoint(&self, name: &str) -> Result<Option<Vec<u8>>, LogError> {
        let select =
            format!(r#"SELECT body FROM "{s}".checkpoints WHERE name = $1"#, s = self.schema);
        let select = &select;
        self.reads
            .run(|c| async move {
                match c.client.query_opt(select.as_str(), &[&name]).await {
                    Ok(Some(row)) => Ok(Some(column::<Vec<u8>>(&row, 0, 0)?)),
                    Ok(None) => Ok(None),
                    Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => Ok(None),
                    Err(e) => Err(pg("cannot read a checkpoint", &e)),
                }
            })
            .await
    }
}
