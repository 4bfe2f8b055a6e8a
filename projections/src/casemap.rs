//! [`CaseMap`]: per-case records keyed by case id, and the [`CaseKey`]
//! they are keyed by.
//!
//! Every event looks up its case, and with tens of thousands of live cases
//! an ordered tree costs several cache misses per lookup (the fold was
//! bound by them). So the map is a hash table in memory and an ordered map
//! on the wire: it serialises its entries sorted by id, byte for byte what
//! a `BTreeMap<String, V>` gives, so the state and its digest stay
//! canonical whatever the table's internal order. Nothing reads the table
//! in its internal order except code that sorts or sums what it reads.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The case id of a case stream (`case-<id>`), or `None` for other streams.
pub fn case_id(stream: &str) -> Option<&str> {
    stream.strip_prefix(gridcase_engine::engine::CASE_STREAM_PREFIX)
}

/// The key of the case a record belongs to; `None` for other streams.
pub fn case_key(rec: &gridcase_engine::log::RecordView<'_>) -> Option<CaseKey> {
    case_id(rec.stream).map(CaseKey::new)
}

/// A case id as a map key that compares in two machine instructions.
///
/// Per-case maps are searched on every event, and comparing `String`s
/// there was a fifth of the fold's time. The first 16 bytes are kept as two
/// big-endian integers (zero-padded) and the rest as bytes; since stream
/// names hold no NUL byte, ordering by (hi, lo, tail) is exactly the
/// byte-wise order of the ids, and the key serialises as the id itself, so
/// the state's bytes are what a `BTreeMap<String, _>` would give. Ids of
/// up to 16 bytes (the engine's are 9) need no heap allocation, and the
/// key is 32 bytes with 8-byte alignment (a `u128` would pad every map
/// entry holding one to 16).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseKey {
    hi: u64,
    lo: u64,
    tail: Box<[u8]>,
}

impl CaseKey {
    /// The key of a case id.
    pub fn new(id: &str) -> CaseKey {
        let bytes = id.as_bytes();
        let n = bytes.len().min(16);
        let mut head = [0u8; 16];
        head[..n].copy_from_slice(&bytes[..n]);
        let (hi, lo) = head.split_at(8);
        let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or_default());
        CaseKey { hi: word(hi), lo: word(lo), tail: bytes[n..].into() }
    }

    /// Heap bytes of the part of the id past 16 bytes (0 for shorter ids).
    pub fn tail_len(&self) -> usize {
        self.tail.len()
    }

    /// The case id.
    pub fn id(&self) -> String {
        let mut head = [0u8; 16];
        head[..8].copy_from_slice(&self.hi.to_be_bytes());
        head[8..].copy_from_slice(&self.lo.to_be_bytes());
        let n = head.iter().position(|b| *b == 0).unwrap_or(16);
        let mut bytes = head[..n].to_vec();
        bytes.extend_from_slice(&self.tail);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Serialize for CaseKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.id())
    }
}

impl<'de> Deserialize<'de> for CaseKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<CaseKey, D::Error> {
        let id = String::deserialize(d)?;
        Ok(CaseKey::new(&id))
    }
}

/// A small multiplicative hasher (FxHash): case keys are short and not
/// attacker-chosen in a way that matters here (the log is written by the
/// engine, which allocates the ids).
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(SEED);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Records by case, hashed in memory, serialised in id order.
#[derive(Clone, Debug)]
pub struct CaseMap<V>(HashMap<CaseKey, V, BuildHasherDefault<FxHasher>>);

impl<V> Default for CaseMap<V> {
    fn default() -> Self {
        CaseMap(HashMap::default())
    }
}

impl<V: PartialEq> PartialEq for CaseMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<V: Eq> Eq for CaseMap<V> {}

impl<V> CaseMap<V> {
    /// The record of a case.
    pub fn get(&self, key: &CaseKey) -> Option<&V> {
        self.0.get(key)
    }
    /// Whether the case has a record.
    pub fn contains_key(&self, key: &CaseKey) -> bool {
        self.0.contains_key(key)
    }
    /// Cases with a record.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether no case has a record.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Entries in id order (what reports iterate, so their output is canonical).
    pub fn sorted(&self) -> Vec<(&CaseKey, &V)> {
        let mut v: Vec<(&CaseKey, &V)> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
    /// Values in no particular order: for sums and counts only.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.0.values()
    }
    pub(crate) fn get_mut(&mut self, key: &CaseKey) -> Option<&mut V> {
        self.0.get_mut(key)
    }
    pub(crate) fn insert(&mut self, key: CaseKey, value: V) -> Option<V> {
        self.0.insert(key, value)
    }
    pub(crate) fn remove(&mut self, key: &CaseKey) -> Option<V> {
        self.0.remove(key)
    }
}

impl<V: Serialize> Serialize for CaseMap<V> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sorted = self.sorted();
        let mut map = s.serialize_map(Some(sorted.len()))?;
        for (k, v) in sorted {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for CaseMap<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = CaseMap<V>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of case records")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut m = CaseMap::default();
                m.0.reserve(access.size_hint().unwrap_or(0));
                while let Some((k, v)) = access.next_entry::<CaseKey, V>()? {
                    m.0.insert(k, v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn case_keys_order_like_their_ids() {
        let ids = [
            "",
            "G",
            "GC0000001",
            "GC0000002",
            "GC00000010",
            "GC0000000000000001",
            "GC00000000000000010",
            "GC000000000000000a",
            "Z",
            "案件-1",
        ];
        let mut by_key: Vec<&str> = ids.to_vec();
        by_key.sort_by_key(|id| CaseKey::new(id));
        let mut by_text = ids.to_vec();
        by_text.sort();
        assert_eq!(by_key, by_text);
        for id in ids {
            assert_eq!(CaseKey::new(id).id(), id);
        }
    }

    /// The wire bytes are those of the ordered map, whatever the insertion order.
    #[test]
    fn serialises_like_an_ordered_map() {
        let ids = ["GC0000003", "GC0000001", "GC00000000000000002", "案件"];
        let mut a = CaseMap::default();
        let mut b = CaseMap::default();
        let mut tree = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            a.insert(CaseKey::new(id), i as u32);
            tree.insert(id.to_string(), i as u32);
        }
        for (i, id) in ids.iter().enumerate().rev() {
            b.insert(CaseKey::new(id), i as u32);
        }
        let bytes = postcard::to_allocvec(&a).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&b).unwrap());
        assert_eq!(bytes, postcard::to_allocvec(&tree).unwrap());
        let back: CaseMap<u32> = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, a);
    }
}
