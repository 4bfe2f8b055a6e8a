//! [`CaseMap`]: the per-case records of a projection, keyed by case id.
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

use crate::track::CaseKey;

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
    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
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
pub(crate) struct CaseMap<V>(HashMap<CaseKey, V, BuildHasherDefault<FxHasher>>);

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
    pub(crate) fn get(&self, key: &CaseKey) -> Option<&V> {
        self.0.get(key)
    }
    pub(crate) fn get_mut(&mut self, key: &CaseKey) -> Option<&mut V> {
        self.0.get_mut(key)
    }
    pub(crate) fn contains_key(&self, key: &CaseKey) -> bool {
        self.0.contains_key(key)
    }
    pub(crate) fn insert(&mut self, key: CaseKey, value: V) -> Option<V> {
        self.0.insert(key, value)
    }
    pub(crate) fn remove(&mut self, key: &CaseKey) -> Option<V> {
        self.0.remove(key)
    }
    pub(crate) fn entry(
        &mut self,
        key: CaseKey,
    ) -> std::collections::hash_map::Entry<'_, CaseKey, V> {
        self.0.entry(key)
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
    /// Entries in id order.
    pub(crate) fn sorted(&self) -> Vec<(&CaseKey, &V)> {
        let mut v: Vec<(&CaseKey, &V)> = self.0.iter().collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        v
    }
    /// Values in no particular order (for sums).
    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.values()
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
