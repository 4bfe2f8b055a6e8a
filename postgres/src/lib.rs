//! `gridcase-postgres`: the event log on PostgreSQL, a second implementation
//! of [`gridcase_engine::log::EventLog`] with the same guarantees as the sled
//! log. This crate owns the PostgreSQL schema of a store, its group-commit
//! writer, its read connections and the follower that notices appends made by
//! other processes. Nothing outside it speaks SQL to the log.
//!
//! # Layout
//!
//! One store is one PostgreSQL schema ([`PgOptions::schema`]), created on open:
//!
//! - `events (position, stream, version, hash, record)`: one row per event.
//!   `record` is the canonical record bytes exactly as
//!   [`gridcase_engine::log::encode_record`] produced them, so
//!   `decode_record` and `ChainVerifier` check a PostgreSQL store the same way
//!   as a sled one; `hash` is BLAKE3 of `record` (it lets `verify` name the
//!   exact row whose bytes changed, as the sled frame table does).
//!   `position` is the primary key and `UNIQUE (stream, version)` makes a
//!   duplicate stream version impossible whatever a writer believes.
//! - `streams (stream, version)`: each stream's last version, written in the
//!   same transaction as its events (cheap `stream_version` and prefix listings).
//! - `idempotency (key, digest, outcome…)`: the first outcome of every keyed
//!   append and the digest of its request.
//! - `meta (key, value)`: the record format and the table layout version; a
//!   store written by a newer build is refused with `LogError::NewerFormat`.
//!
//! # Why positions are gap-free
//!
//! A global position must never become visible before every smaller one is:
//! a subscriber that has delivered position `p` resumes at `p + 1` and never
//! looks back. A `SEQUENCE` (or `IDENTITY`) column cannot give that. `nextval`
//! is not transactional: a rolled-back append leaves a hole, and two
//! transactions that took 5 and 6 may commit 6 first, so a reader can see 6
//! while 5 is still invisible, deliver it, and lose 5 for good.
//!
//! So positions are never drawn from the database. Each store has a single
//! writer task per process that does group commit: it takes every append
//! queued at that moment, and runs them as ONE transaction that
//!
//! 1. runs `BEGIN ISOLATION LEVEL READ COMMITTED` and
//!    `pg_advisory_xact_lock(k)`, `k` derived from the schema name;
//! 2. in statements issued after the lock is granted (so their snapshots see
//!    every transaction that held the lock before), reads `max(position)`,
//!    the versions of the streams and the idempotency keys of the group;
//! 3. if `max(position)` differs from the writer's in-memory head (another
//!    process appended, or a commit's outcome was unknown), re-reads the last
//!    record (its hash and recorded-at) before going on;
//! 4. decides every append in memory (conflicts, idempotent retries, the
//!    recorded-at, which never decreases) and assigns positions
//!    `head + 1 ..= head + n` contiguously, chaining each record's
//!    `prev_hash` to the record before;
//! 5. inserts all the group's rows with one multi-row `INSERT … SELECT FROM
//!    UNNEST(…)` of prepared arrays, plus the idempotency and stream rows, and
//!    commits. Appends are acknowledged only after `COMMIT` returns.
//!
//! The advisory lock is transaction-scoped, so it is released exactly when the
//! group commits or rolls back, including when the session dies. The next
//! holder therefore starts from a head that includes every committed group,
//! and groups commit strictly in position order with no group in flight
//! beside them: at any snapshot the visible positions are a prefix `1..=n`.
//! The several steps run pipelined (tokio-postgres sends the statements
//! without waiting for each answer), so a group costs about three network
//! round trips plus one WAL flush, whatever its size; the flush is what group
//! commit amortises.
//!
//! The isolation level is pinned to READ COMMITTED because the argument
//! needs a fresh snapshot per statement: under REPEATABLE READ (for example
//! as a server default) the snapshot would be taken by the lock statement
//! itself, before the lock is granted, and could miss the previous group.
//!
//! The constraints are the backstop, not the mechanism: a writer that ignored
//! the lock, or a bug, could only get a unique violation on `position`,
//! `(stream, version)` or the idempotency key; the writer then rolls back,
//! re-reads the head and retries the group (a few times) with fresh state.
//!
//! `import` (records exported from another store, appended as they are)
//! runs the same way as a transaction of its own: under the lock it checks
//! that the records continue this store's chain and stream versions, then
//! inserts them, so it is all or nothing and keeps the prefix property.
//!
//! Several processes (or several [`PgLog`]s in one process) may open the same
//! store: the lock serialises their groups, and each writer notices the other
//! writers' appends by the head check of step 3. A follower task keeps
//! [`EventLog::head`] and [`EventLog::watch_head`] current with other writers'
//! appends, woken by `LISTEN`/`NOTIFY` (each commit notifies) and, whatever
//! happens to notifications, by polling `max(position)` every
//! [`PgOptions::poll_interval`] (200 ms by default).
//!
//! # Durability
//!
//! The transaction commit is the durability point. In the default
//! [`Durability::Durable`] mode the writer's session sets
//! `synchronous_commit = on`, whatever the server's default, so `COMMIT`
//! returns only after the WAL is flushed (and, with synchronous replication
//! configured, replicated): the promise of the sled log's `Durable` mode
//! (an `fdatasync` per group). `Flushed` (and `Buffered`, which PostgreSQL
//! cannot make weaker) set `synchronous_commit = off`: the commit returns
//! before the WAL flush, like the sled log's `Flushed` mode, which survives
//! a crash of the process but not a power cut ([`PgOptions::durability`]). If the connection breaks during `COMMIT`, the
//! outcome is unknown: the appends of that group fail with a storage error
//! that says so, a retry with the same idempotency key is safe, and the next
//! group reconnects and re-reads the head.
//!
//! # On a multi-node PostgreSQL-compatible engine
//!
//! The design needs one serialisation point per store, and that does not
//! change on a distributed engine: a total order is a single sequence of
//! commits. What changes is how the point is taken and what it costs.
//! **Citus:** keep the log tables as plain (local, undistributed) tables on
//! the coordinator, or as a single-shard table, and connect writers to the
//! coordinator, where the advisory lock lives; distributing `events` by stream
//! would turn every group into a two-phase multi-shard transaction and the
//! lock would still be the coordinator's. Scale reads (projections) out, not
//! the log. **YugabyteDB / CockroachDB:** advisory locks and `LISTEN/NOTIFY`
//! are missing or partial (and CockroachDB runs SERIALIZABLE by default), so
//! replace the advisory lock with a one-row `log_head (position, hash)` table
//! read with `SELECT … FOR UPDATE` and updated in the same transaction (a
//! portable lock that also stores the head), treat serialization failures
//! (`40001`) like the unique violation here (roll back, re-read, retry the
//! group), drop `NOTIFY` for polling or the engine's change feed, and declare
//! `position` range-sharded (`PRIMARY KEY (position ASC)` on YugabyteDB,
//! whose default is hash sharding) so ordered scans stay on one range. Every
//! commit is then a consensus round trip across nodes and the tail range is a
//! hot spot, so per-store throughput stays bounded by one writer at a time;
//! group commit matters even more there, and a deployment that outgrows one
//! log would split into several stores (for example one per district), each
//! with its own head. `size_on_disk` would come from the engine's own range
//! statistics instead of `pg_total_relation_size`.

#![deny(missing_docs)]

mod follow;
mod head;
mod pg_log;
mod pool;
mod sql;
mod writer;

#[cfg(feature = "test-hooks")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use gridcase_engine::log::LogError;
use gridcase_engine::log::{Durability, EventLog};
use gridcase_engine::time::Clock;

pub use gridcase_engine::log::{MAX_EVENTS_PER_APPEND, MAX_PAYLOAD_BYTES};
pub use pg_log::PgLog;

/// Table layout version written by this build (independent of the record
/// format, which the engine owns); a store with a newer layout is refused.
pub const LAYOUT_VERSION: u32 = 1;

/// The schema [`open_log`] uses.
pub const DEFAULT_SCHEMA: &str = "gridcase";

/// Tunables of the PostgreSQL backend.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// The PostgreSQL schema that holds the store (created on open): one
    /// store per schema. Lower-case ASCII letters, digits and `_`, starting
    /// with a letter or `_`, at most 48 bytes.
    pub schema: String,
    /// Connections kept for reads (at least one), used round-robin; each
    /// log also has one writer and one follower connection.
    pub read_connections: usize,
    /// How often the follower checks for appends by other processes when no
    /// notification arrived.
    pub poll_interval: Duration,
    /// Whether commits `NOTIFY` and the follower `LISTEN`s, so other
    /// processes see appends at once rather than at the next poll.
    pub listen: bool,
    /// Appends waiting for the writer before callers are made to wait.
    pub queue_depth: usize,
    /// Most appends in one group transaction.
    pub max_group_requests: usize,
    /// Record bytes after which a group stops taking more appends (one
    /// larger append still goes alone).
    pub max_group_bytes: usize,
    /// When an append is acknowledged, set on the writer's session whatever
    /// the server's default: `Durable` is `synchronous_commit = on` (the
    /// commit waits for the WAL flush: survives a power cut), `Flushed` and
    /// `Buffered` are `synchronous_commit = off` (the commit returns before
    /// the WAL flush, which follows within `wal_writer_delay`, three times
    /// that at most: survives a crash of this process, not of the server).
    pub durability: Durability,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            schema: DEFAULT_SCHEMA.to_string(),
            read_connections: 3,
            poll_interval: Duration::from_millis(200),
            listen: true,
            queue_depth: 8192,
            max_group_requests: 4096,
            max_group_bytes: 8 * 1024 * 1024,
            durability: Durability::Durable,
        }
    }
}

/// Opens (or creates) the store in schema [`DEFAULT_SCHEMA`] of the database
/// at `url` (`postgres://user:password@host:port/db`) with default options.
pub async fn open_log(url: &str, clock: Arc<dyn Clock>) -> Result<Arc<dyn EventLog>, LogError> {
    let log = PgLog::open(url, PgOptions::default(), clock).await?;
    Ok(Arc::new(log))
}
