//! The read connections: a few connections with their prepared statements,
//! handed out round-robin and replaced when they break.
//!
//! A tokio-postgres client pipelines concurrent queries on one connection, so
//! a slot is shared, not checked out: the mutex only guards replacing a
//! broken connection, never a query.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use gridcase_engine::log::LogError;
use tokio_postgres::{Client, Config, Statement};

use crate::sql::{connect, pg, Sql};

/// One read connection and its prepared statements.
pub(crate) struct ReadConn {
    pub client: Client,
    pub read_all: Statement,
    pub read_stream: Statement,
    pub stream_version: Statement,
    pub streams_from: Statement,
    pub streams_between: Statement,
    pub verify_page: Statement,
    pub idempotency_one: Statement,
    pub size: Statement,
}

impl ReadConn {
    pub(crate) async fn open(
        config: &Config,
        schema: &str,
        role: &str,
    ) -> Result<ReadConn, LogError> {
        let client = connect(config, role, schema).await?;
        let sql = Sql::new(schema);
        let prepare = |text: String| {
            let client = &client;
            async move {
                client.prepare(&text).await.map_err(|e| pg("cannot prepare a read statement", &e))
            }
        };
        // Pipelined: one round trip for all of them.
        let (read_all, read_stream, stream_version) = futures::try_join!(
            prepare(sql.read_all),
            prepare(sql.read_stream),
            prepare(sql.stream_version),
        )?;
        let (streams_from, streams_between, verify_page, idempotency_one, size) = futures::try_join!(
            prepare(sql.streams_from),
            prepare(sql.streams_between),
            prepare(sql.verify_page),
            prepare(sql.idempotency_one),
            prepare(sql.size),
        )?;
        Ok(ReadConn {
            client,
            read_all,
            read_stream,
            stream_version,
            streams_from,
            streams_between,
            verify_page,
            idempotency_one,
            size,
        })
    }
}

/// A few read connections used round-robin.
pub(crate) struct ReadPool {
    config: Config,
    schema: String,
    slots: Vec<Mutex<Option<Arc<ReadConn>>>>,
    next: AtomicUsize,
}

impl ReadPool {
    /// Opens `size` connections now, so that a bad URL or a missing
    /// permission fails the open rather than the first read.
    pub(crate) async fn open(
        config: &Config,
        schema: &str,
        size: usize,
    ) -> Result<ReadPool, LogError> {
        // Connected side by side: authentication (SCRAM) costs client CPU.
        let opening: Vec<_> = (0..size.max(1))
            .map(|_| {
                let (config, schema) = (config.clone(), schema.to_string());
                tokio::spawn(async move { ReadConn::open(&config, &schema, "reader").await })
            })
            .collect();
        let mut slots = Vec::with_capacity(opening.len());
        for task in opening {
            let conn = task.await.map_err(|e| {
                LogError::Internal(format!("opening a read connection failed: {e}"))
            })??;
            slots.push(Mutex::new(Some(Arc::new(conn))));
        }
        Ok(ReadPool {
            config: config.clone(),
            schema: schema.to_string(),
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// The next connection, reconnected first if it broke.
    pub(crate) async fn get(&self) -> Result<Arc<ReadConn>, LogError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let current = self.slots[i].lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(conn) = current {
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        let conn = Arc::new(ReadConn::open(&self.config, &self.schema, "reader").await?);
        *self.slots[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
        Ok(conn)
    }

    /// Runs a read, once more on a fresh connection if the connection it got
    /// turned out to be broken (reads are idempotent, so retrying is safe).
    pub(crate) async fn run<T, F, Fut>(&self, f: F) -> Result<T, LogError>
    where
        F: Fn(Arc<ReadConn>) -> Fut,
        Fut: std::future::Future<Output = Result<T, LogError>>,
    {
        let conn = self.get().await?;
        match f(conn.clone()).await {
            Err(LogError::Storage(_)) if conn.client.is_closed() => f(self.get().await?).await,
            other => other,
        }
    }
}
