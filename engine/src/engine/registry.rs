//! The registry the engine decides with, folded from the `org` stream.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Engine, PAGE};
use crate::domain::{ActorId, Event};
use crate::log::{AppendOutcome, AppendRequest, ExpectedVersion, Position, StreamId};
use crate::org::{OrgFile, Registry, ORG_STREAM};
use crate::Error;

/// Marks the registry stale when dropped armed (a cancelled load or catch-up).
pub(super) struct StaleOnDrop<'a>(pub(super) Option<&'a Engine>);

impl StaleOnDrop<'_> {
    pub(super) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for StaleOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(engine) = self.0.take() {
            engine.registry_stale.store(true, Ordering::SeqCst);
        }
    }
}

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
    ///
    /// `actor` is recorded on the organisation's events as who loaded it:
    /// an operator's staff id, or [`ActorId::System`] for automated setups.
    /// Cancellation-safe: if the future is dropped after the append was
    /// sent, the next command re-reads the registry first.
    pub async fn init_org(&self, actor: &ActorId, org: &OrgFile) -> Result<AppendOutcome, Error> {
        let events = org.events()?;
        let mut req = AppendRequest::new(
            StreamId::new(ORG_STREAM)?,
            ExpectedVersion::NoStream,
            actor.to_string(),
            events.iter().map(Event::to_data).collect(),
        );
        req.correlation_id = Some("init".into());
        // Dropped between here and the refresh, the registry would miss the
        // organisation: the guard marks it stale so the next command re-reads it.
        let guard = StaleOnDrop(Some(self));
        let out = self
            .log
            .append(req)
            .await
            .map_err(|e| match Error::from(e) {
                Error::Conflict { .. } => Error::InvalidInput(
                    "this store already has an organisation; use a new data directory".into(),
                ),
                other => other,
            })?
            .outcome;
        self.note_recorded(out.recorded_at);
        self.refresh_registry().await?;
        guard.disarm();
        Ok(out)
    }

    /// Checks a GeoJSON FeatureCollection of boundaries against the
    /// registry's units (see [`crate::geo::import()`]) and appends them to
    /// the `org` stream as one atomic batch: the bounding box (`bounds`,
    /// else the file's `bbox`, else the boundaries' extent) and one
    /// `BoundarySet` per micro-grid. Returns the outcome and how many
    /// boundaries were set. The append expects the registry's version, so a
    /// concurrent registry change makes it a conflict instead of mixing
    /// boundaries checked against another hierarchy.
    pub async fn import_boundaries(
        &self,
        actor: &ActorId,
        geojson: &str,
        bounds: Option<crate::geo::BoundingBox>,
    ) -> Result<(AppendOutcome, usize), Error> {
        self.refresh_registry_if_stale().await?;
        let reg = self.registry();
        if reg.version == 0 {
            return Err(Error::InvalidInput(
                "the store has no organisation yet: load one before its boundaries".into(),
            ));
        }
        let geo = crate::geo::import(geojson, &reg.units, bounds)?;
        let mut events = Vec::with_capacity(geo.boundaries.len() + 1);
        if let Some(bounds) = geo.bounds {
            events.push(Event::BoundsSet { bounds });
        }
        for (code, boundary) in &geo.boundaries {
            events.push(Event::BoundarySet { code: code.clone(), boundary: boundary.clone() });
        }
        let mut req = AppendRequest::new(
            StreamId::new(ORG_STREAM)?,
            ExpectedVersion::Exact(reg.version),
            actor.to_string(),
            events.iter().map(Event::to_data).collect(),
        );
        req.correlation_id = Some("import-geojson".into());
        let guard = StaleOnDrop(Some(self));
        let out = self.log.append(req).await?.outcome;
        self.note_recorded(out.recorded_at);
        self.refresh_registry().await?;
        guard.disarm();
        Ok((out, geo.boundaries.len()))
    }

    /// Re-reads the registry if a cancelled call may have left it behind.
    pub(super) async fn refresh_registry_if_stale(&self) -> Result<(), Error> {
        if self.registry_stale.load(Ordering::SeqCst) {
            self.refresh_registry().await?;
        }
        Ok(())
    }

    /// Re-reads registry events appended since the registry was last loaded.
    pub async fn refresh_registry(&self) -> Result<(), Error> {
        let stream = StreamId::new(ORG_STREAM)?;
        let have = self.registry().version;
        if self.log.stream_version(&stream).await? <= have {
            self.registry_stale.store(false, Ordering::SeqCst);
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
        self.registry_stale.store(false, Ordering::SeqCst);
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
