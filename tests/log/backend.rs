//! The backend factory the log suites are written against.
//!
//! Every conformance and property test takes an `Arc<dyn Backend>`, asks it
//! for a fresh [`Store`] and talks to the store's log only through the
//! [`EventLog`] trait, so any backend implementing that trait can be plugged
//! in: see [`backends`], which adds the PostgreSQL backend when
//! `GRIDCASE_TEST_PG_URL` is set.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use gridcase::engine::log::LogError;
use gridcase::engine::log::{EventLog, Position, SledLog, SledOptions};
use gridcase::engine::time::SystemClock;
use gridcase_postgres::{PgLog, PgOptions};

/// Makes fresh, empty stores of one backend.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Short name for messages (`sled`, `sled-tiny-frames`, `postgres`).
    fn name(&self) -> String;

    /// A new, empty store, opened.
    async fn create(&self) -> Box<dyn Store>;
}

/// One store of a backend and the log currently open on it.
#[async_trait]
pub trait Store: Send + Sync {
    /// The open log. Callers must drop their clones before [`Store::reopen`].
    fn log(&self) -> Arc<dyn EventLog>;

    /// A restart: drops the open log (closing it as a process exit would)
    /// and opens the same store again, running the backend's recovery path.
    async fn reopen(&mut self);

    /// Flips one byte of the stored record at `position` (at or after
    /// byte offset `byte` of its canonical bytes) behind the log's back.
    /// `None` when the backend has no such hook; the tamper test is then skipped.
    async fn tamper(&self, _position: Position, _byte: usize) -> Option<Result<(), LogError>> {
        None
    }
}

/// The backends the suites run against.
///
/// The sled backend runs twice: with its default options and with tiny
/// frames (a few records per group-commit frame), so that small test
/// workloads cross frame boundaries inside batches, reads and recovery.
pub fn backends() -> Vec<Arc<dyn Backend>> {
    let mut all: Vec<Arc<dyn Backend>> = vec![
        Arc::new(SledBackend { name: "sled", options: SledOptions::default() }),
        Arc::new(SledBackend {
            name: "sled-tiny-frames",
            options: SledOptions {
                max_frame_events: 3,
                max_frame_bytes: 2048,
                ..SledOptions::default()
            },
        }),
    ];
    // ---- PostgreSQL -------------------------------------------------------
    // Each store is a fresh schema in the database GRIDCASE_TEST_PG_URL names
    // (`.ci/postgres.sh` sets one up and prints the URL).
    // Without the variable the runs say SKIPPED in the test output (and
    // fail under CI): `gridcase_postgres::testing::test_url`.
    if let Some(url) = gridcase_postgres::testing::test_url("the PostgreSQL runs of the log suite")
    {
        all.push(Arc::new(PgBackend { url }));
    }
    all
}

/// Runs one async suite function against every backend, each on its own
/// multi-threaded runtime.
pub fn run_all<F, Fut>(test: F)
where
    F: Fn(Arc<dyn Backend>) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        eprintln!("-- backend {}", backend.name());
        runtime().block_on(test(backend));
    }
}

/// A small multi-threaded runtime (the machines have two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// The sled backend with given options, each store in its own temporary directory.
pub struct SledBackend {
    /// Name in messages.
    pub name: &'static str,
    /// Options every store is opened with.
    pub options: SledOptions,
}

#[async_trait]
impl Backend for SledBackend {
    fn name(&self) -> String {
        self.name.to_string()
    }

    async fn create(&self) -> Box<dyn Store> {
        let dir = tempfile::tempdir().expect("temporary directory");
        let log = open_sled(dir.path(), &self.options).expect("open a new sled store");
        Box::new(SledStore { dir, options: self.options.clone(), log: Some(Arc::new(log)) })
    }
}

/// Opens a sled log with the system clock.
///
/// sled 0.34 releases its file lock only when its background I/O jobs have
/// let go of the file, which can be a moment after the last `Db` handle is
/// dropped, so an in-process reopen right after a drop may find the store
/// "in use"; that case is retried for a few seconds.
pub fn open_sled(path: &Path, options: &SledOptions) -> Result<SledLog, LogError> {
    retry_while_locked(
        || SledLog::open(path, options.clone(), Arc::new(SystemClock)),
        |e| matches!(e, LogError::Storage(m) if m.contains("in use by another process") || m.contains("could not acquire lock")),
    )
}

/// Runs `open` until it succeeds, fails with an error `locked` does not
/// accept, or 10 s pass.
pub fn retry_while_locked<T, E>(
    mut open: impl FnMut() -> Result<T, E>,
    locked: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Err(e) if locked(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2))
            }
            other => return other,
        }
    }
}

/// A sled store in a temporary directory.
pub struct SledStore {
    dir: tempfile::TempDir,
    options: SledOptions,
    log: Option<Arc<SledLog>>,
}

impl SledStore {
    fn sled(&self) -> &Arc<SledLog> {
        self.log.as_ref().expect("the store is open")
    }
}

/// Takes the last reference to `log`, waiting briefly for tasks that are
/// still dropping theirs; panics if a clone is leaked.
pub fn sole_owner<T>(mut log: Arc<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(log) {
            Ok(inner) => return inner,
            Err(shared) if Instant::now() < deadline => {
                log = shared;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(shared) => panic!(
                "{} clones of the log are still alive at restart; drop them first",
                Arc::strong_count(&shared) - 1
            ),
        }
    }
}

#[async_trait]
impl Store for SledStore {
    fn log(&self) -> Arc<dyn EventLog> {
        self.sled().clone()
    }

    async fn reopen(&mut self) {
        if let Some(log) = self.log.take() {
            drop(sole_owner(log));
        }
        let log = open_sled(self.dir.path(), &self.options).expect("reopen the sled store");
        self.log = Some(Arc::new(log));
    }

    async fn tamper(&self, position: Position, byte: usize) -> Option<Result<(), LogError>> {
        Some(self.sled().tamper_for_test(position, byte))
    }
}

/// The PostgreSQL backend: every store is a fresh schema of the database at
/// `url`, dropped when the store is.
pub struct PgBackend {
    /// The database the stores are made in.
    pub url: String,
}

/// A schema name no other store (of this or another test process) uses.
fn fresh_pg_schema() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("gc_suite_{}_{nanos}_{n}", std::process::id())
}

async fn open_pg(url: &str, schema: &str) -> PgLog {
    // One read connection: the suites open hundreds of stores, and each
    // connection's authentication costs client CPU (much of it in debug builds).
    let options =
        PgOptions { schema: schema.to_string(), read_connections: 1, ..PgOptions::default() };
    PgLog::open(url, options, Arc::new(SystemClock)).await.expect("open a PostgreSQL store")
}

#[async_trait]
impl Backend for PgBackend {
    fn name(&self) -> String {
        "postgres".to_string()
    }

    async fn create(&self) -> Box<dyn Store> {
        let schema = fresh_pg_schema();
        let log = open_pg(&self.url, &schema).await;
        Box::new(PgStore { url: self.url.clone(), schema, log: Some(Arc::new(log)) })
    }
}

/// A PostgreSQL store: one schema.
pub struct PgStore {
    url: String,
    schema: String,
    log: Option<Arc<PgLog>>,
}

impl PgStore {
    fn pg(&self) -> &Arc<PgLog> {
        self.log.as_ref().expect("the store is open")
    }
}

#[async_trait]
impl Store for PgStore {
    fn log(&self) -> Arc<dyn EventLog> {
        self.pg().clone()
    }

    async fn reopen(&mut self) {
        if let Some(log) = self.log.take() {
            drop(sole_owner(log));
        }
        self.log = Some(Arc::new(open_pg(&self.url, &self.schema).await));
    }

    async fn tamper(&self, position: Position, byte: usize) -> Option<Result<(), LogError>> {
        Some(self.pg().tamper_for_test(position, byte).await)
    }
}

impl Drop for PgStore {
    /// Drops the schema. `Drop` cannot await and may run inside the test's
    /// runtime, so the cleanup runs on a thread with a runtime of its own.
    fn drop(&mut self) {
        self.log.take();
        let (url, schema) = (self.url.clone(), self.schema.clone());
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            match rt.map(|rt| rt.block_on(PgLog::drop_store(&url, &schema))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("note: could not drop test schema {schema}: {e}"),
                Err(e) => eprintln!("note: could not drop test schema {schema}: {e}"),
            }
        });
        let _ = cleanup.join();
    }
}
