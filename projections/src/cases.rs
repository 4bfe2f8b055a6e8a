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
//! hash table of positions. About 230 bytes a case plus its texts (the
//! projections test `the_listing_is_small` measures it).
//!
//! A case the set has evicted (closed and past its reopen window) and that
//! changes anyway (a reopen after the policy lengthened the window) keeps
//! its listed state: without the folded case there is nothing to copy.

use std::collections::HashMap;

use gridcase_engine::domain::{Case, Channel, Event, Level, Priority, RequestKind, Status};
use gridcase_engine::log::RecordedEvent;
use gridcase_engine::time::Timestamp;
use serde::{Deserialize, Serialize};

use crate::casemap::{case_key, CaseKey, CaseMap};
use crate::projection::Projection;

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
    index: HashMap<Box<str>, Sym>,
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
    index: HashMap<Box<[Sym]>, Sym>,
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
    /// Description, location, last note and merged-into id, one after the other.
    texts: Box<str>,
    /// Where the location, the note and the merged-into id start in `texts`.
    cuts: [u32; 3],
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
}

impl Listed {
    fn text(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.cuts[i - 1] as usize };
        let end = self.cuts.get(i).map_or(self.texts.len(), |c| *c as usize);
        self.texts.get(start..end).unwrap_or("")
    }

    /// Rewrites the texts (a new note or a merge; rare, so one allocation is fine).
    fn set_texts(&mut self, description: &str, location: &str, note: &str, merged_into: &str) {
        let mut t = String::with_capacity(
            description.len() + location.len() + note.len() + merged_into.len(),
        );
        t.push_str(description);
        self.cuts[0] = t.len() as u32;
        t.push_str(location);
        self.cuts[1] = t.len() as u32;
        t.push_str(note);
        self.cuts[2] = t.len() as u32;
        t.push_str(merged_into);
        self.texts = t.into_boxed_str();
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

/// Open311's `updated_datetime` of a case.
fn updated(case: &Case) -> Timestamp {
    case.closed_at.filter(|_| case.status.is_final()).unwrap_or(case.updated_at)
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
    slots: CaseMap<u32>,
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
        let mut slots = CaseMap::default();
        for (i, r) in w.records.iter().enumerate() {
            slots.insert(r.key.clone(), i as u32);
        }
        Cases { names: w.names, lists: w.lists, records: w.records, slots }
    }
}

impl Projection for Cases {
    const NAME: &'static str = "cases";

    fn apply(
        &mut self,
        rec: &RecordedEvent,
        event: &Event,
        before: Option<&Case>,
        after: Option<&Case>,
    ) {
        let (Some(after), Some(key)) = (after, case_key(rec)) else { return };
        let note = note_of(event);
        match (before, self.slots.get(&key).copied()) {
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
            cuts: [0; 3],
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
        };
        r.holders = self.holder_list(case);
        r.set_texts(
            &case.description,
            &case.location,
            note.unwrap_or(""),
            case.merged_into.as_deref().unwrap_or(""),
        );
        // Records arrive in log order, whose times never go back: the new
        // one almost always goes last. Equal times are ordered by id.
        let at =
            self.records.partition_point(|x| (x.submitted_at, &x.key) <= (r.submitted_at, &r.key));
        self.slots.insert(r.key.clone(), at as u32);
        self.records.insert(at, r);
        self.renumber(at + 1);
    }

    fn remove(&mut self, slot: usize) {
        if slot < self.records.len() {
            let r = self.records.remove(slot);
            self.slots.remove(&r.key);
            self.renumber(slot);
        }
    }

    /// Points the ids of the records from `from` on at their new places.
    fn renumber(&mut self, from: usize) {
        for (i, r) in self.records.iter().enumerate().skip(from) {
            if let Some(s) = self.slots.get_mut(&r.key) {
                *s = i as u32;
            }
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
        let merged = case.merged_into.as_deref().unwrap_or("");
        if note.is_some() || r.text(3) != merged {
            let (description, location) = (r.text(0).to_string(), r.text(1).to_string());
            let note = note.map_or_else(|| r.text(2).to_string(), str::to_string);
            r.set_texts(&description, &location, &note, merged);
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
        let slot = *self.slots.get(&CaseKey::new(id))?;
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

    /// Bytes this listing holds on the heap, counted from its capacities:
    /// the records, their texts, the id table and the interned codes (the
    /// allocator's own overhead per allocation is not included).
    pub fn heap_bytes(&self) -> usize {
        let records = self.records.capacity() * std::mem::size_of::<Listed>();
        let texts: usize = self.records.iter().map(|r| r.texts.len()).sum();
        let names: usize = self.names.list.iter().map(|n| 2 * (n.len() + 24)).sum();
        let lists: usize = self.lists.list.iter().map(|l| 2 * (4 * l.len() + 24)).sum();
        records + texts + self.slots.table_bytes() + names + lists
    }
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
    /// Past its resolution deadline at `now` and still being worked on (as `Case::is_overdue`).
    pub fn is_overdue(&self, now: Timestamp) -> bool {
        !self.r.status.is_final()
            && self.r.status != Status::Resolved
            && now > self.r.resolution_due
    }
}
