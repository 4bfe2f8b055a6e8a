//! The registry the engine decides with, folded from the `org` stream.

use std::sync::Arc;

use super::{Engine, PAGE};
use crate::domain::Event;
use crate::log::{AppendOutcome, AppendRequest, ExpectedVersion, Position, StreamId};
use crate::org::{OrgFile, Registry, ORG_STREAM};
use crate::Error;

impl Engine {
    /// The registry in force.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether an organisation has been loaded.
    pub fn has_org(&self) -> bool {
        self.registry().version > 0
    }

    /// Loads an organisation into an empty store, as one atomic batch.
    pub async fn init_org(&self, org: &OrgFile, actor: &str) -> Result<AppendOutcome, Error> {
        let events = org.events()?;
        let mut req = AppendRequest::new(
            StreamId::new(ORG_STREAM)?,
            ExpectedVersion::NoStream,
            actor,
            events.iter().map(Event::to_data).collect(),
        );
        req.correlation_id = Some("init".into());
        let out = self.log.append(req).await.map_err(|e| match e {
            Error::Conflict { .. } => Error::InvalidInput(
                "this store already has an organisation; use a new data directory".into(),
            ),
            other => other,
        })?;
        self.refresh_registry().await?;
        Ok(out)
    }

    /// Re-reads registry events appended since the registry was last loaded.
    pub async fn refresh_registry(&self) -> Result<(), Error> {
        let stream = StreamId::new(ORG_STREAM)?;
        let have = self.registry().version;
        if self.log.stream_version(&stream).await? <= have {
            return Ok(());
        }
        let mut reg = (*self.registry()).clone();
        let mut from = have + 1;
        loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in &page {
                let ev = Event::from_recorded(rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                reg.apply(&ev);
                reg.version = rec.version;
            }
        }
        reg.reindex();
        *self.registry.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(reg);
        Ok(())
    }

    /// The registry as it stood at a past position (for audits).
    pub async fn registry_as_of(&self, position: Position) -> Result<Registry, Error> {
        let stream = StreamId::new(ORG_STREAM)?;
        let mut reg = Registry::default();
        let mut from = 1;
        'outer: loop {
            let page = self.log.read_stream(&stream, from, PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.version + 1;
            for rec in &page {
                if rec.position > position {
                    break 'outer;
                }
                let ev = Event::from_recorded(rec)
                    .map_err(|e| Error::Corruption { position: rec.position, reason: e.0 })?;
                reg.apply(&ev);
                reg.version = rec.version;
            }
        }
        reg.reindex();
        Ok(reg)
    }
}
