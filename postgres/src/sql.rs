//! The SQL of a store: its schema, the statements each connection prepares,
//! connecting, and the mapping of PostgreSQL failures to the engine's errors.

use std::time::Duration;

use gridcase_engine::log::LogError;
use gridcase_engine::log::{Hash, LogHead, Position, RecordView, RecordedEvent, StoredRecord};
use gridcase_engine::time::Timestamp;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls, Row};

use crate::LAYOUT_VERSION;

/// Longest schema name accepted: PostgreSQL identifiers stop at 63 bytes and
/// the notification channel adds a prefix to it.
pub(crate) const MAX_SCHEMA_LEN: usize = 48;

/// Checks a schema name. Only plain lower-case identifiers are accepted so
/// that the name can be spliced into SQL and into a `LISTEN` channel without
/// any quoting subtleties.
pub(crate) fn validate_schema(schema: &str) -> Result<(), LogError> {
    let ok = !schema.is_empty()
        && schema.len() <= MAX_SCHEMA_LEN
        && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit()
        && !schema.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(LogError::InvalidInput(format!(
            "schema name {schema:?} must be 1 to {MAX_SCHEMA_LEN} bytes of a-z, 0-9 and _, \
             not start with a digit or pg_"
        )))
    }
}

/// The advisory lock key of a store. Advisory locks are per database, so the
/// key is derived from the schema, and from a fixed tag so that it is
/// unlikely to collide with another application's keys.
pub(crate) fn lock_key(schema: &str) -> i64 {
    let h = blake3::hash(format!("gridcase-postgres/log/{schema}").as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

/// The `LISTEN`/`NOTIFY` channel of a store.
pub(crate) fn channel(schema: &str) -> String {
    format!("gridcase_log_{schema}")
}

/// DDL of the format table, run first so that a newer store is refused
/// before anything else is created in it.
pub(crate) fn ddl_meta(s: &str) -> String {
    format!(
        r#"CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);"#
    )
}

/// DDL of the data tables. `stream` is `COLLATE "C"` so that its order is
/// byte order, the order of Rust strings and of the sled index.
pub(crate) fn ddl_tables(s: &str) -> String {
    format!(
        r#"CREATE TABLE IF NOT EXISTS "{s}".events (
    position bigint PRIMARY KEY CHECK (position >= 1),
    stream   text COLLATE "C" NOT NULL,
    version  bigint NOT NULL CHECK (version >= 1),
    hash     bytea NOT NULL,
    record   bytea NOT NULL,
    UNIQUE (stream, version)
);
CREATE TABLE IF NOT EXISTS "{s}".streams (
    stream  text COLLATE "C" PRIMARY KEY,
    version bigint NOT NULL
);
CREATE TABLE IF NOT EXISTS "{s}".idempotency (
    key            bytea PRIMARY KEY,
    digest         bytea NOT NULL,
    first_position bigint NOT NULL,
    last_position  bigint NOT NULL,
    last_version   bigint NOT NULL,
    recorded_at    bigint NOT NULL
);"#
    )
}

/// The tables of a store.
const TABLES: [&str; 4] = ["meta", "events", "streams", "idempotency"];

/// Creates the store's tables if needed and checks its format, under the
/// store's advisory lock so that two processes opening a fresh store at once
/// do not race on `CREATE … IF NOT EXISTS` (which is not atomic against
/// itself). A complete store is only read, so a role with no DDL rights can
/// open a store that an administrator created.
pub(crate) async fn ensure_schema(client: &Client, schema: &str) -> Result<(), LogError> {
    // Stream names are compared and ordered as UTF-8 bytes (Rust's order);
    // another server encoding would reorder or refuse them.
    let encoding: String = client
        .query_one("SELECT current_setting('server_encoding')", &[])
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg("cannot read the server encoding", &e))?;
    if encoding != "UTF8" {
        return Err(LogError::InvalidInput(format!(
            "the database uses encoding {encoding}; gridcase needs a UTF8 database"
        )));
    }
    client
        .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
        .await
        .map_err(|e| pg("cannot begin the schema transaction", &e))?;
    let result = async {
        client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(schema)])
            .await
            .map_err(|e| pg("cannot take the store lock", &e))?;
        let existing: Vec<String> = client
            .query("SELECT tablename::text FROM pg_tables WHERE schemaname = $1", &[&schema])
            .await
            .map_err(|e| pg("cannot list the store's tables", &e))?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(|e| pg("cannot list the store's tables", &e))?;
        let has = |t: &str| existing.iter().any(|e| e == t);
        let wanted = [
            ("format", u32::from(gridcase_engine::log::RECORD_FORMAT)),
            ("layout", LAYOUT_VERSION),
        ];
        let mut complete = TABLES.iter().all(|t| has(t));
        if has("meta") {
            for (key, supported) in wanted {
                let found: Option<i64> = client
                    .query_opt(
                        &format!(r#"SELECT value FROM "{schema}".meta WHERE key = $1"#),
                        &[&key],
                    )
                    .await
                    .and_then(|row| row.map(|r| r.try_get(0)).transpose())
                    .map_err(|e| pg("cannot read the store format", &e))?;
                match found {
                    Some(found) if found > i64::from(supported) => {
                        return Err(LogError::NewerFormat {
                            found: u32::try_from(found).unwrap_or(u32::MAX),
                            supported,
                        });
                    }
                    Some(_) => {}
                    None => complete = false,
                }
            }
        }
        if complete {
            return Ok(());
        }
        client
            .batch_execute(&ddl_meta(schema))
            .await
            .map_err(|e| pg(&format!("cannot create schema {schema}"), &e))?;
        for (key, value) in wanted {
            client
                .execute(
                    &format!(
                        r#"INSERT INTO "{schema}".meta (key, value) VALUES ($1, $2)
                           ON CONFLICT (key) DO NOTHING"#
                    ),
                    &[&key, &i64::from(value)],
                )
                .await
                .map_err(|e| pg("cannot write the store format", &e))?;
        }
        client
            .batch_execute(&ddl_tables(schema))
            .await
            .map_err(|e| pg(&format!("cannot create the tables of schema {schema}"), &e))?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            client.batch_execute("COMMIT").await.map_err(|e| pg("cannot commit the schema", &e))
        }
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Statement texts shared by the writer and the readers.
pub(crate) struct Sql {
    pub max_position: String,
    pub last_record: String,
    pub last_hash: String,
    pub read_all: String,
    pub read_stream: String,
    pub stream_version: String,
    pub streams_from: String,
    pub streams_between: String,
    pub verify_page: String,
    pub size: String,
    pub stream_versions: String,
    pub idempotency_lookup: String,
    pub idempotency_one: String,
    pub insert_events: String,
    pub insert_idempotency: String,
    pub upsert_idempotency: String,
    pub upsert_streams: String,
}

impl Sql {
    pub(crate) fn new(s: &str) -> Sql {
        Sql {
            max_position: format!(r#"SELECT coalesce(max(position), 0) FROM "{s}".events"#),
            // The head with its predecessor's bytes, to check its link.
            last_record: format!(
                r#"SELECT e.position, e.hash, e.record, p.record, p.hash FROM "{s}".events e
                   LEFT JOIN "{s}".events p ON p.position = e.position - 1
                   ORDER BY e.position DESC LIMIT 1"#
            ),
            last_hash: format!(
                r#"SELECT position, hash FROM "{s}".events ORDER BY position DESC LIMIT 1"#
            ),
            // Read from the record before the first one wanted, whose bytes
            // seed the page's chain check (see `PgLog::read_all`).
            read_all: format!(
                r#"SELECT position, record, hash FROM "{s}".events
                   WHERE position >= $1 ORDER BY position LIMIT $2"#
            ),
            // Each record with its predecessor's bytes, to check its link.
            read_stream: format!(
                r#"SELECT e.position, e.record, e.hash, p.record, p.hash FROM "{s}".events e
                   LEFT JOIN "{s}".events p ON p.position = e.position - 1
                   WHERE e.stream = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3"#
            ),
            stream_version: format!(r#"SELECT version FROM "{s}".streams WHERE stream = $1"#),
            streams_from: format!(
                r#"SELECT stream FROM "{s}".streams WHERE stream >= $1 ORDER BY stream"#
            ),
            streams_between: format!(
                r#"SELECT stream FROM "{s}".streams
                   WHERE stream >= $1 AND stream < $2 ORDER BY stream"#
            ),
            verify_page: format!(
                r#"SELECT position, stream, version, hash, record FROM "{s}".events
                   WHERE position > $1 ORDER BY position LIMIT $2"#
            ),
            size: r#"SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1 AND c.relkind = 'r'"#
                .to_string(),
            stream_versions: format!(
                r#"SELECT stream, version FROM "{s}".streams WHERE stream = ANY($1::text[])"#
            ),
            idempotency_lookup: format!(
                r#"SELECT key, digest, first_position, last_position, last_version, recorded_at
                   FROM "{s}".idempotency WHERE key = ANY($1::bytea[])"#
            ),
            idempotency_one: format!(
                r#"SELECT digest, first_position, last_position, last_version, recorded_at
                   FROM "{s}".idempotency WHERE key = $1"#
            ),
            insert_events: format!(
                r#"INSERT INTO "{s}".events (position, stream, version, hash, record)
                   SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], $4::bytea[], $5::bytea[])"#
            ),
            insert_idempotency: format!(
                r#"INSERT INTO "{s}".idempotency
                       (key, digest, first_position, last_position, last_version, recorded_at)
                   SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[],
                                        $5::bigint[], $6::bigint[])"#
            ),
            upsert_idempotency: format!(
                r#"INSERT INTO "{s}".idempotency
                       (key, digest, first_position, last_position, last_version, recorded_at)
                   SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bigint[], $4::bigint[],
                                        $5::bigint[], $6::bigint[])
                   ON CONFLICT (key) DO UPDATE SET
                       digest = EXCLUDED.digest, first_position = EXCLUDED.first_position,
                       last_position = EXCLUDED.last_position,
                       last_version = EXCLUDED.last_version, recorded_at = EXCLUDED.recorded_at"#
            ),
            upsert_streams: format!(
                r#"INSERT INTO "{s}".streams (stream, version)
                   SELECT * FROM UNNEST($1::text[], $2::bigint[])
                   ON CONFLICT (stream) DO UPDATE SET version = EXCLUDED.version"#
            ),
        }
    }
}

/// The config of one of a store's connections: named `gc-ROLE SCHEMA` in
/// `pg_stat_activity` (unless the URL names the application), so that an
/// operator can tell which store and which part of it a session serves, and
/// with a connect timeout unless the URL sets one.
pub(crate) fn session_config(config: &Config, role: &str, schema: &str) -> Config {
    let mut config = config.clone();
    if config.get_application_name().is_none() {
        config.application_name(format!("gc-{role} {schema}"));
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config
}

/// Opens a connection for `role` of the store in `schema` and drives it on
/// its own task.
pub(crate) async fn connect(config: &Config, role: &str, schema: &str) -> Result<Client, LogError> {
    let config = session_config(config, role, schema);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| pg(&format!("cannot connect to {}", describe_config(&config)), &e))?;
    let role = role.to_string();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(role, error = %pg_text(&e), "postgres connection ended");
        }
    });
    Ok(client)
}

/// `user@host:port/db` of a config, without the password.
pub(crate) fn describe_config(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        config.get_user().unwrap_or("?"),
        config.get_dbname().or(config.get_user()).unwrap_or("?")
    )
}

/// The text of a PostgreSQL failure, with the server's message and SQLSTATE
/// when there is one (the client's `Display` alone says only "db error").
pub(crate) fn pg_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(": ");
                s.push_str(d);
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(inner) = source {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                source = inner.source();
            }
            s
        }
    }
}

/// A PostgreSQL failure as the engine's storage error.
pub(crate) fn pg(context: &str, e: &tokio_postgres::Error) -> LogError {
    LogError::Storage(format!("postgres: {context}: {}", pg_text(e)))
}

/// Whether `e` is a unique violation (the backstop of positions, stream
/// versions and idempotency keys).
pub(crate) fn is_unique_violation(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A position or version as a PostgreSQL `bigint`.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64, LogError> {
    i64::try_from(v)
        .map_err(|_| LogError::InvalidInput(format!("{what} {v} exceeds PostgreSQL bigint")))
}

/// A `bigint` column that holds a position or a version.
pub(crate) fn to_u64(v: i64, position: Position, what: &str) -> Result<u64, LogError> {
    u64::try_from(v)
        .map_err(|_| LogError::Corruption { position, reason: format!("negative {what} {v}") })
}

/// Reads a column, reporting a type mismatch as corruption at `position`.
pub(crate) fn column<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
    position: Position,
) -> Result<T, LogError> {
    row.try_get(idx).map_err(|e| LogError::Corruption {
        position,
        reason: format!("column {idx} does not read: {}", pg_text(&e)),
    })
}

/// A stored 32-byte hash.
pub(crate) fn to_hash(bytes: &[u8], position: Position) -> Result<Hash, LogError> {
    bytes.try_into().map_err(|_| LogError::Corruption {
        position,
        reason: format!("stored hash has {} bytes", bytes.len()),
    })
}

/// Decodes a row of `(position, record, hash, predecessor's record,
/// predecessor's hash)` (a stream read) and checks it: the record's bytes
/// against the hash stored in its row, its position, and its link to its
/// predecessor, hashed from the predecessor's bytes.
pub(crate) fn decode_linked_row(row: &Row) -> Result<RecordedEvent, LogError> {
    let position = to_u64(column::<i64>(row, 0, 0)?, 0, "position")?;
    let bytes: &[u8] = column(row, 1, position)?;
    let stored: &[u8] = column(row, 2, position)?;
    let view = RecordView::decode_checked(bytes, position, stored)?;
    view.check_link_to(predecessor(row, 3, position)?)?;
    Ok(view.to_owned())
}

/// The predecessor's `(record, hash)` in columns `at` and `at + 1` of a row
/// (`None` when the row has none: the record is at position 1, or the
/// predecessor is missing, which [`RecordView::check_link_to`] reports).
fn predecessor(
    row: &Row,
    at: usize,
    position: Position,
) -> Result<Option<StoredRecord<'_>>, LogError> {
    let bytes: Option<&[u8]> = column(row, at, position)?;
    let hash: Option<&[u8]> = column(row, at + 1, position)?;
    Ok(bytes.zip(hash))
}

/// Reads the last record of the store with `client` (inside the writer's
/// transaction, or on open): the head, and the recorded-at the next group
/// must not go below. The head must check out as every read record does
/// (stored hash, position, link to the record before): a log whose head
/// does not verify is not extended.
pub(crate) async fn load_head(
    client: &Client,
    statement: &tokio_postgres::Statement,
) -> Result<(LogHead, Timestamp), LogError> {
    let Some(row) =
        client.query_opt(statement, &[]).await.map_err(|e| pg("cannot read the head", &e))?
    else {
        return Ok((
            LogHead { position: 0, hash: gridcase_engine::log::GENESIS_HASH },
            Timestamp(i64::MIN),
        ));
    };
    let position = to_u64(column::<i64>(&row, 0, 0)?, 0, "position")?;
    let stored: &[u8] = column(&row, 1, position)?;
    let bytes: &[u8] = column(&row, 2, position)?;
    let view = RecordView::decode_checked(bytes, position, stored)?;
    view.check_link_to(predecessor(&row, 3, position)?)?;
    Ok((LogHead { position, hash: view.hash }, view.recorded_at))
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` when there is none. UTF-8 byte order is code point order, so
/// bumping the last character that can be bumped gives the bound.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = u32::from(last) + 1;
        while next <= u32::from(char::MAX) {
            if let Some(c) = char::from_u32(next) {
                chars.push(c);
                return Some(chars.into_iter().collect());
            }
            // Only the surrogate range is skipped here.
            next += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn schema_names() {
        assert!(validate_schema("gridcase").is_ok());
        assert!(validate_schema("gc_test_1").is_ok());
        assert!(validate_schema("_x").is_ok());
        for bad in ["", "1x", "Gc", "a-b", "a\"b", "pg_x", &"a".repeat(49)] {
            assert!(validate_schema(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lock_keys_differ_per_schema() {
        assert_ne!(lock_key("a"), lock_key("b"));
        assert_eq!(lock_key("a"), lock_key("a"));
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("case-").as_deref(), Some("case."));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound("x\u{D7FF}").as_deref(), Some("x\u{E000}"));
        let p = "case-";
        let ub = prefix_upper_bound(p).unwrap();
        for s in ["case-", "case-1", "case-\u{10FFFF}\u{10FFFF}"] {
            assert!(s >= p && s < ub.as_str());
        }
        assert!("case." >= ub.as_str());
    }
}
