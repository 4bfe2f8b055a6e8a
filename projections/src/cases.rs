//! The case listing: every case ever submitted (open or finished), by id
//! and by submission time, with what Open311's `GET requests` shows of it.
//!
//! The set's live cases are only those that can still change, but Open311
//! lists requests of any 90-day window whatever their state, so this read
//! model keeps every case. It does not fold: it copies what it shows from
//! the [`Case`] the set folded (`after`), plus the note of the last event
//! that carried one (for `status_notes`).
//!
//! Memory is what bounds it (one record per case, for ever), so a record
//! keeps only what the listing shows, compactly: unit, category and
//! micro-grid codes are interned (a district has a few thousand), the
//! holders as one interned list, the texts (description, location, last
//! note, the case it was merged into) in one allocation, and the record
//! sits in one vector sorted by submission time, found by id through a
//! hash table of positions into it (5 bytes a case: the id is only in the
//! record). 144 bytes a case plus its texts; the projections test
//! `the_listing_is_small` counts it.
//!
//! A case the set has evicted (closed and past its reopen window) and that
//! changes anyway (a reopen after the policy lengthened the window) keeps
//! its listed state: without the folded case there is nothing to copy.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault};

use hashbrown::HashTable;

use gridcase_engine::domain::{
    Case, Channel, Event, Level, LocationSource, Priority, RequestKind, Status,
};
use gridcase_engine::geo::GeoPoint;
use gridcase_engine::log::RecordView;
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::casemap::{case_key, CaseKey, FxHasher};
use crate::projection::Projection;

/// The interning tables' hasher: their keys are short codes, hashed on
/// every new case.
type Fx = BuildHasherDefault<FxHasher>;

/// An interned code: an index into [`Names`].
type Sym = u32;

/// No micro-grid.
const NONE: Sym = Sym::MAX;

/// Interned strings, numbered in the order first seen (the log's order, so
/// the numbering is as deterministic as the log).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "Vec<Box<str>>")]
struct Names {
    list: Vec<Box<str>>,
    index: HashMap<Box<str>, Sym, Fx>,
}

impl From<Vec<Box<str>>> for Names {
    fn from(list: Vec<Box<str>>) -> Names {
        let index = list.iter().enumerate().map(|(i, n)| (n.clone(), i as Sym)).collect();
        Names { list, index }
    }
}

/// Only the list is state; the index is rebuilt from it on load.
impl Serialize for Names {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl PartialEq for Names {
    fn eq(&self, other: &Names) -> bool {
        self.list == other.list
    }
}

impl Eq for Names {}

impl Names {
    fn intern(&mut self, name: &str) -> Sym {
        if let Some(s) = self.index.get(name) {
            return *s;
        }
        let s = self.list.len() as Sym;
        self.list.push(name.into());
        self.index.insert(name.into(), s);
        s
    }

    fn get(&self, s: Sym) -> &str {
        self.list.get(s as usize).map_or("", |n| n)
    }
}

/// Interned holder lists (a case's holders are one of few combinations).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(from = "Vec<Box<[Sym]>>")]
struct Lists {
    list: Vec<Box<[Sym]>>,
    index: HashMap<Box<[Sym]>, Sym, Fx>,
}

impl From<Vec<Box<[Sym]>>> for Lists {
    fn from(list: Vec<Box<[Sym]>>) -> Lists {
        let index = list.iter().enumerate().map(|(i, n)| (n.clone(), i as Sym)).collect();
        Lists { list, index }
    }
}

/// Only the list is state; the index is rebuilt from it on load.
impl Serialize for Lists {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl PartialEq for Lists {
    fn eq(&self, other: &Lists) -> bool {
        self.list == other.list
    }
}

impl Eq for Lists {}

impl Lists {
    fn intern(&mut self, units: &[Sym]) -> Sym {
        if let Some(s) = self.index.get(units) {
            return *s;
        }
        let s = self.list.len() as Sym;
        self.list.push(units.into());
        self.index.insert(units.into(), s);
        s
    }

    fn get(&self, s: Sym) -> &[Sym] {
        self.list.get(s as usize).map_or(&[], |l| l)
    }
}

/// One listed case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Listed {
    key: CaseKey,
    submitted_at: Timestamp,
    /// Open311's `updated_datetime`: when it ended if it has, else its last event.
    updated: Timestamp,
    resolution_due: Timestamp,
    version: u64,
    /// Description, location, last note, merged-into id and the first
    /// attached file's SHA-256 (Open311's `media_url`), one after the other.
    texts: Box<str>,
    /// Where the location, the note, the merged-into id and the media hash start in `texts`.
    cuts: [u32; 4],
    category: Sym,
    grid: Sym,
    /// `NONE` without one.
    micro_grid: Sym,
    community: Sym,
    street: Sym,
    /// An index into the holder lists.
    holders: Sym,
    reopen_count: u32,
    status: Status,
    level: Level,
    kind: RequestKind,
    priority: Priority,
    channel: Channel,
    /// The point the resident reported (Open311's `lat`/`long`).
    point: Option<GeoPoint>,
    /// How the location became a grid.
    located_by: LocationSource,
}

impl Listed {
    fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.cuts[i - 1] as usize };
        let end = self.cuts.get(i).map_or(self.texts.len(), |c| *c as usize);
        self.texts.get(start..end).unwrap_or("")
    }

    /// Rewrites the texts (a new note, a merge, the submission's details;
    /// rare, so one allocation is fine): `[description, location, note,
    /// merged_into, media]`.
    fn set_texts(&mut self, texts: [&str; 5]) {
        let mut t = String::with_capacity(texts.iter().map(|s| s.len()).sum());
        for (i, part) in texts.iter().enumerate() {
            if i > 0 {
                self.cuts[i - 1] = t.len() as u32;
            }
            t.push_str(part);
        }
        self.texts = t.into_boxed_str();
    }

    fn texts(&self) -> [&str; 5] {
        [self.text(0), self.text(1), self.text(2), self.text(3), self.text(4)]
    }
}

/// The note or reason of an event, if it carries a non-blank one.
fn note_of(event: &Event) -> Option<&str> {
    let note = match event {
        Event::CaseRejected { reason }
        | Event::CaseWithdrawn { reason }
        | Event::CaseReturned { reason, .. }
        | Event::CaseReopened { reason, .. } => reason,
        Event::CaseEscalated { note, .. }
        | Event::CaseDispatched { note, .. }
        | Event::CaseResolved { note, .. }
        | Event::CaseClosed { note }
        | Event::CaseSupervised { note, .. }
        | Event::CallbackRecorded { note, .. } => note,
        _ => return None,
    };
    Some(note.trim()).filter(|n| !n.is_empty())
}

/// Where a listed case's first file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaLink<'a> {
    /// A file the server holds, by its SHA-256.
    Stored(&'a str),
    /// A link a client gave to a file elsewhere.
    Url(&'a str),
}

/// A case's first attached file: its SHA-256, or the link a client gave
/// ("" without one).
fn media_of(case: &Case) -> &str {
    case.media.first().map_or("", |m| m.url.as_deref().unwrap_or(&m.sha256))
}

/// Open311's `updated_datetime` of a case.
fn updated(case: &Case) -> Timestamp {
    case.closed_at.filter(|_| case.status.is_final()).unwrap_or(case.updated_at)
}

/// The positions in `records`, hashed by the ids of the records they point
/// at: the ids are not stored twice. Every entry is a distinct position,
/// so an entry is found by its key's hash and its position when records
/// move.
#[derive(Clone, Default)]
struct Slots(HashTable<u32>);

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Slots({})", self.0.len())
    }
}

/// Derived from `records`: equal whenever the records are.
impl PartialEq for Slots {
    fn eq(&self, _: &Slots) -> bool {
        true
    }
}

impl Eq for Slots {}

fn hash(key: &CaseKey) -> u64 {
    Fx::default().hash_one(key)
}

impl Slots {
    /// The position of `key`'s record.
    fn find(&self, records: &[Listed], key: &CaseKey) -> Option<u32> {
        self.0.find(hash(key), |s| records.get(*s as usize).is_some_and(|r| &r.key == key)).copied()
    }

    /// Adds `key` at `slot`; `records` must already hold every record the
    /// table points at (a growing table rehashes them).
    fn insert(&mut self, records: &[Listed], key: &CaseKey, slot: u32) {
        self.0.insert_unique(hash(key), slot, |s| {
            records.get(*s as usize).map_or(0, |r| hash(&r.key))
        });
    }

    /// `key`'s record moved from `from` to `to`.
    fn moved(&mut self, key: &CaseKey, from: u32, to: u32) {
        if let Some(s) = self.0.find_mut(hash(key), |s| *s == from) {
            *s = to;
        }
    }

    /// `key`'s record at `slot` is gone.
    fn remove(&mut self, key: &CaseKey, slot: u32) {
        if let Ok(e) = self.0.find_entry(hash(key), |s| *s == slot) {
            e.remove();
        }
    }
}

/// The case listing (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "CasesWire")]
pub struct Cases {
    names: Names,
    lists: Lists,
    /// Sorted by (submission time, id).
    records: Vec<Listed>,
    /// Where each case is in `records`; rebuilt on load.
    #[serde(skip)]
    slots: Slots,
}

/// What is serialised of [`Cases`]: everything but the id index.
#[derive(Deserialize)]
struct CasesWire {
    names: Names,
    lists: Lists,
    records: Vec<Listed>,
}

impl From<CasesWire> for Cases {
    fn from(w: CasesWire) -> Cases {
        let mut slots = Slots::default();
        for (i, r) in w.records.iter().enumerate() {
            slots.insert(&w.records, &r.key, i as u32);
        }
        Cases { names: w.names, lists: w.lists, records: w.records, slots }
    }
}

impl Projection for Cases {
    const NAME: &'static str = "cases";

    fn apply(
        &mut self,
        rec: &RecordView<'_>,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        let (Some(after), Some(key)) = (after, case_key(rec)) else { return };
        let note = note_of(event);
        match (before, self.slots.find(&self.records, &key)) {
            (Some(_), Some(slot)) => self.update(slot as usize, after, note),
            // A new case (or, in a hand-written log, a stream submitted
            // again after the set forgot it: the new case replaces the old).
            (_, existing) => {
                if let Some(slot) = existing {
                    self.remove(slot as usize);
                }
                self.insert(key, after, note);
            }
        }
    }
}

impl Cases {
    fn holder_list(&mut self, case: &Case) -> Sym {
        let units: Vec<Sym> = case.holders.iter().map(|h| self.names.intern(&h.unit)).collect();
        self.lists.intern(&units)
    }

    fn insert(&mut self, key: CaseKey, case: &Case, note: Option<&str>) {
        let names = &mut self.names;
        let mut r = Listed {
            key,
            submitted_at: case.submitted_at,
            updated: updated(case),
            resolution_due: case.resolution_due,
            version: case.version,
            texts: Box::default(),
            cuts: [0; 4],
            category: names.intern(&case.category),
            grid: names.intern(&case.grid),
            micro_grid: case.micro_grid.as_deref().map_or(NONE, |m| names.intern(m)),
            community: names.intern(&case.community),
            street: names.intern(&case.street),
            holders: 0,
            reopen_count: case.reopen_count,
            status: case.status,
            level: case.level,
            kind: case.kind,
            priority: case.priority,
            channel: case.channel,
            point: case.point,
            located_by: case.located_by,
        };
        r.holders = self.holder_list(case);
        r.set_texts([
            &case.description,
            &case.location,
            note.unwrap_or(""),
            case.merged_into.as_deref().unwrap_or(""),
            media_of(case),
        ]);
        // Records arrive in log order, whose times never go back: the new
        // one almost always goes last, checked first (a binary search
        // touches a cold record per step). Equal times are ordered by id.
        let fits_last = |x: &Listed| (x.submitted_at, &x.key) <= (r.submitted_at, &r.key);
        let at = match self.records.last() {
            None => 0,
            Some(last) if fits_last(last) => self.records.len(),
            Some(_) => self.records.partition_point(fits_last),
        };
        self.records.insert(at, r);
        // The records after it moved up by one (almost always none): last
        // first, so that no two entries ever hold the same position.
        for i in (at + 1..self.records.len()).rev() {
            self.slots.moved(&self.records[i].key, i as u32 - 1, i as u32);
        }
        let key = self.records[at].key.clone();
        self.slots.insert(&self.records, &key, at as u32);
    }

    fn remove(&mut self, slot: usize) {
        if slot >= self.records.len() {
            return;
        }
        let r = self.records.remove(slot);
        self.slots.remove(&r.key, slot as u32);
        // The records after it moved down by one: first first, for the
        // same reason as in `insert`.
        for i in slot..self.records.len() {
            self.slots.moved(&self.records[i].key, i as u32 + 1, i as u32);
        }
    }

    fn update(&mut self, slot: usize, case: &Case, note: Option<&str>) {
        let Some(old) = self.records.get(slot).map(|r| r.holders) else { return };
        let same_holders = {
            let units = self.lists.get(old);
            units.len() == case.holders.len()
                && units.iter().zip(&case.holders).all(|(s, h)| self.names.get(*s) == h.unit)
        };
        // Most events leave the holders as they were: no interning then.
        let holders = if same_holders { old } else { self.holder_list(case) };
        let Some(r) = self.records.get_mut(slot) else { return };
        r.holders = holders;
        r.updated = updated(case);
        r.resolution_due = case.resolution_due;
        r.version = case.version;
        r.reopen_count = case.reopen_count;
        r.status = case.status;
        r.level = case.level;
        // The submission's details follow its first event.
        r.point = case.point;
        r.located_by = case.located_by;
        let merged = case.merged_into.as_deref().unwrap_or("");
        let media = media_of(case);
        if note.is_some_and(|n| n != r.text(2)) || r.text(3) != merged || r.text(4) != media {
            let old = r.texts().map(str::to_string);
            let note = note.unwrap_or(&old[2]);
            r.set_texts([&old[0], &old[1], note, merged, media]);
        }
    }

    fn view<'a>(&'a self, r: &'a Listed) -> ListedCase<'a> {
        ListedCase { cases: self, r }
    }

    /// Cases listed.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no case is listed.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// A case by id.
    pub fn get(&self, id: &str) -> Option<ListedCase<'_>> {
        let slot = self.slots.find(&self.records, &CaseKey::new(id))?;
        self.records.get(slot as usize).map(|r| self.view(r))
    }

    /// Cases submitted in `[from, to]`, oldest first (equal times by id);
    /// `.rev()` gives newest first.
    pub fn submitted_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl DoubleEndedIterator<Item = ListedCase<'_>> {
        let start = self.records.partition_point(|r| r.submitted_at < from);
        let end = self.records.partition_point(|r| r.submitted_at <= to).max(start);
        self.records[start..end].iter().map(move |r| self.view(r))
    }

    /// Cases submitted in `[from, to]` grouped by the place they were
    /// resolved to: one row per micro-grid (or per grid, for cases placed
    /// on a grid without a micro-grid), most cases first, then by code;
    /// with `within`, only places in that unit's subtree (decided by
    /// `is_within`, the registry's rule).
    pub fn by_place(
        &self,
        from: Timestamp,
        to: Timestamp,
        within: impl Fn(&str) -> bool,
    ) -> PlacesReport {
        let mut rows: HashMap<(Sym, Sym), PlaceRow> = HashMap::new();
        let mut totals = LocatedTotals::default();
        for c in self.submitted_between(from, to) {
            let place = c.micro_grid().unwrap_or(c.grid());
            if !within(place) {
                continue;
            }
            let row = rows.entry((c.r.grid, c.r.micro_grid)).or_insert_with(|| PlaceRow {
                micro_grid: c.micro_grid().map(str::to_string),
                grid: c.grid().to_string(),
                community: c.community().to_string(),
                ..PlaceRow::default()
            });
            row.cases += 1;
            row.open += u64::from(!c.status().is_final() && c.status() != Status::Resolved);
            let counter = match c.located_by() {
                LocationSource::Code => (&mut row.by_code, &mut totals.code),
                LocationSource::Point => (&mut row.by_point, &mut totals.point),
                LocationSource::Address => (&mut row.by_address, &mut totals.address),
            };
            *counter.0 += 1;
            *counter.1 += 1;
        }
        let mut rows: Vec<PlaceRow> = rows.into_values().collect();
        rows.sort_by(|a, b| {
            b.cases
                .cmp(&a.cases)
                .then_with(|| (&a.grid, &a.micro_grid).cmp(&(&b.grid, &b.micro_grid)))
        });
        PlacesReport { from, to, located_by: totals, places: rows }
    }

    /// Bytes this listing holds on the heap: the records, their texts and
    /// ids longer than 16 bytes, the id table and the interned codes (the
    /// allocator's own overhead per allocation is not included). The
    /// records vector counts by length: its spare capacity, up to as much
    /// again after a doubling, is address space the process has not
    /// touched yet rather than memory it holds.
    pub fn heap_bytes(&self) -> usize {
        let records = self.records.len() * std::mem::size_of::<Listed>();
        let texts: usize = self.records.iter().map(|r| r.texts.len() + r.key.tail_len()).sum();
        let names: usize = self.names.list.iter().map(|n| 2 * n.len() + 40).sum();
        let lists: usize = self.lists.list.iter().map(|l| 8 * l.len() + 40).sum();
        let slots = self.slots.0.capacity() * (std::mem::size_of::<u32>() + 1);
        records + texts + slots + names + lists
    }
}

/// Cases per place: what [`Cases::by_place`] returns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacesReport {
    /// Start of the submission window.
    pub from: Timestamp,
    /// End of the submission window.
    pub to: Timestamp,
    /// All those cases by how their location was resolved.
    pub located_by: LocatedTotals,
    /// One row per place, most cases first.
    pub places: Vec<PlaceRow>,
}

/// Cases counted by how their location was resolved.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocatedTotals {
    /// By a grid or micro-grid code.
    pub code: u64,
    /// By a GPS point.
    pub point: u64,
    /// By a registered address.
    pub address: u64,
}

/// The cases of one micro-grid (or of a grid, without one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceRow {
    /// The micro-grid, if the case was resolved to one.
    pub micro_grid: Option<String>,
    /// Its grid.
    pub grid: String,
    /// The grid's community at submission.
    pub community: String,
    /// Cases submitted there in the window.
    pub cases: u64,
    /// Of those, still being worked on (not resolved or ended).
    pub open: u64,
    /// Placed by a code.
    pub by_code: u64,
    /// Placed by a point.
    pub by_point: u64,
    /// Placed by an address.
    pub by_address: u64,
}

/// One listed case, borrowed from [`Cases`].
#[derive(Clone, Copy)]
pub struct ListedCase<'a> {
    cases: &'a Cases,
    r: &'a Listed,
}

impl std::fmt::Debug for ListedCase<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListedCase")
            .field("id", &self.id())
            .field("status", &self.status())
            .field("holders", &self.holders().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl<'a> ListedCase<'a> {
    fn name(&self, s: Sym) -> &'a str {
        self.cases.names.get(s)
    }

    /// Case id.
    pub fn id(&self) -> String {
        self.r.key.id()
    }
    /// Where it stands.
    pub fn status(&self) -> Status {
        self.r.status
    }
    /// The level holding it (or that held it last).
    pub fn level(&self) -> Level {
        self.r.level
    }
    /// Request kind.
    pub fn kind(&self) -> RequestKind {
        self.r.kind
    }
    /// Priority.
    pub fn priority(&self) -> Priority {
        self.r.priority
    }
    /// Intake channel.
    pub fn channel(&self) -> Channel {
        self.r.channel
    }
    /// Category code.
    pub fn category(&self) -> &'a str {
        self.name(self.r.category)
    }
    /// The resident's description.
    pub fn description(&self) -> &'a str {
        self.r.text(0)
    }
    /// Location as given at submission.
    pub fn location(&self) -> &'a str {
        self.r.text(1)
    }
    /// Grid code.
    pub fn grid(&self) -> &'a str {
        self.name(self.r.grid)
    }
    /// Micro-grid code, if the location named one.
    pub fn micro_grid(&self) -> Option<&'a str> {
        (self.r.micro_grid != NONE).then(|| self.name(self.r.micro_grid))
    }
    /// The point the resident reported, if any.
    pub fn point(&self) -> Option<GeoPoint> {
        self.r.point
    }
    /// How the location became a grid: code, point or address.
    pub fn located_by(&self) -> LocationSource {
        self.r.located_by
    }
    /// Community at submission.
    pub fn community(&self) -> &'a str {
        self.name(self.r.community)
    }
    /// Street at submission.
    pub fn street(&self) -> &'a str {
        self.name(self.r.street)
    }
    /// Holding unit codes, as `Case::holders` (the last holders once it ended).
    pub fn holders(&self) -> impl Iterator<Item = &'a str> + 'a {
        let names = &self.cases.names;
        self.cases.lists.get(self.r.holders).iter().map(move |s| names.get(*s))
    }
    /// The note or reason of the last event that carried a non-blank one.
    pub fn note(&self) -> Option<&'a str> {
        Some(self.r.text(2)).filter(|n| !n.is_empty())
    }
    /// The case it was merged into (a duplicate's original).
    pub fn merged_into(&self) -> Option<&'a str> {
        Some(self.r.text(3)).filter(|n| !n.is_empty())
    }
    /// The first file attached at submission: the SHA-256 of a file the
    /// server holds, or an http(s) link a client gave (Open311 serves
    /// either as `media_url`; [`MediaLink`] tells them apart).
    pub fn media(&self) -> Option<MediaLink<'a>> {
        let m = self.r.text(4);
        if m.is_empty() {
            None
        } else if m.starts_with("http://") || m.starts_with("https://") {
            Some(MediaLink::Url(m))
        } else {
            Some(MediaLink::Stored(m))
        }
    }
    /// Submission time.
    pub fn submitted_at(&self) -> Timestamp {
        self.r.submitted_at
    }
    /// When it ended (closed, rejected, merged, withdrawn) if it has, else
    /// the time of its last event: Open311's `updated_datetime`.
    pub fn updated_at(&self) -> Timestamp {
        self.r.updated
    }
    /// Resolution deadline, as extended or reset by a reopen.
    pub fn resolution_due(&self) -> Timestamp {
        self.r.resolution_due
    }
    /// Reopens.
    pub fn reopen_count(&self) -> u32 {
        self.r.reopen_count
    }
    /// Version of the case stream.
    pub fn version(&self) -> u64 {
        self.r.version
    }
    /// Past its resolution deadline at `now` and still being worked on (`Case::is_overdue`).
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        Case::overdue(self.r.status, self.r.resolution_due, now)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gridcase_engine::log::{RecordedEvent, CODEC_POSTCARD};

    use super::*;

    fn submitted(id: &str, t: i64) -> (RecordedEvent, Event, Case) {
        let event = Event::CaseSubmitted {
            case_id: id.into(),
            channel: Channel::App,
            kind: RequestKind::Help,
            category: "lighting".into(),
            priority: Priority::Normal,
            description: format!("problem {id}"),
            location: "G1".into(),
            grid: "G1".into(),
            micro_grid: None,
            community: "C1".into(),
            street: "S1".into(),
            contact: None,
            found_on_patrol: false,
            response_due: Timestamp(t + 1),
            resolution_due: Timestamp(t + 2),
            hold_until: Timestamp(t + 1),
        };
        let data = event.to_data();
        let rec = RecordedEvent {
            position: 1,
            stream: format!("case-{id}"),
            version: 1,
            event_type: data.event_type,
            schema_version: data.schema_version,
            recorded_at: Timestamp(t),
            actor: "r".into(),
            correlation_id: None,
            causation_id: None,
            idempotency: None,
            payload_codec: CODEC_POSTCARD,
            payload: data.payload,
            prev_hash: [0; 32],
            hash: [0; 32],
        };
        let case = Case::start(&event, "r", Timestamp(t)).unwrap();
        (rec, event, case)
    }

    fn ids(c: &Cases) -> Vec<String> {
        c.submitted_between(Timestamp(0), Timestamp(100)).map(|l| l.id()).collect()
    }

    /// Records out of order (equal times, ids descending; an earlier time
    /// last) land in (time, id) order and every id still finds its record;
    /// a stream submitted again replaces its case, and a reload rebuilds
    /// the id table.
    #[test]
    fn out_of_order_inserts_and_replacements_keep_the_index() {
        let mut c = Cases::default();
        for (id, t) in [("c9", 10), ("c5", 10), ("c7", 10), ("c1", 20), ("c0", 5), ("c3", 10)] {
            let (rec, ev, case) = submitted(id, t);
            c.apply(&RecordView::of(&rec), &ev, None, Some(&case));
        }
        assert_eq!(ids(&c), ["c0", "c3", "c5", "c7", "c9", "c1"]);
        for id in ["c0", "c1", "c3", "c5", "c7", "c9"] {
            assert_eq!(c.get(id).unwrap().id(), id);
        }
        let (rec, ev, case) = submitted("c3", 30);
        c.apply(&RecordView::of(&rec), &ev, None, Some(&case));
        assert_eq!(ids(&c), ["c0", "c5", "c7", "c9", "c1", "c3"]);
        assert_eq!(c.get("c3").unwrap().submitted_at(), Timestamp(30));
        assert!(c.get("c4").is_none());
        let back: Cases = postcard::from_bytes(&postcard::to_allocvec(&c).unwrap()).unwrap();
        for id in ["c0", "c1", "c3", "c5", "c7", "c9"] {
            assert_eq!(back.get(id).unwrap().description(), format!("problem {id}"));
        }
        let newest: Vec<String> =
            c.submitted_between(Timestamp(10), Timestamp(20)).rev().map(|l| l.id()).collect();
        assert_eq!(newest, ["c1", "c9", "c7", "c5"]);
    }
}
