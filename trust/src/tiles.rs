//! The C2SP tlog-tiles layout: resource paths, hash tiles and entry bundles.
//!
//! A log served this way is a set of static resources under one prefix:
//! `checkpoint`, `tile/<L>/<N>[.p/<W>]` (the hashes at tree level 8·L,
//! 256 per full tile, 32 bytes each) and `tile/entries/<N>[.p/<W>]` (the
//! entries themselves, each as a big-endian uint16 length and the bytes).
//! `N` is written in 3-digit groups, all but the last prefixed with `x`
//! (`1234067` → `x001/x234/067`). A monitor fetches the tiles a checkpoint's
//! size implies, hashes them up to the checkpoint's root and so
//! authenticates every one without trusting the server.

use crate::merkle::{Tree, TILE_WIDTH};
use crate::TrustError;

/// Largest entry an entry bundle can carry (its length is a uint16).
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// One resource of a tlog-tiles log, as parsed from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// `checkpoint`.
    Checkpoint,
    /// A hash tile: `tile/<level>/<index>[.p/<width>]`.
    Tile {
        /// Tile level (0 holds leaf hashes).
        level: u8,
        /// Tile index within the level.
        index: u64,
        /// Hashes in it: 256 for a full tile, 1..=255 for a partial one.
        width: u16,
    },
    /// An entry bundle: `tile/entries/<index>[.p/<width>]`.
    Entries {
        /// Bundle index (entries 256·index ..).
        index: u64,
        /// Entries in it: 256 full, 1..=255 partial.
        width: u16,
    },
}

/// Writes a tile index as tlog-tiles path elements (`x001/x234/067`).
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn width_suffix(width: u16) -> String {
    if u64::from(width) == TILE_WIDTH {
        String::new()
    } else {
        format!(".p/{width}")
    }
}

impl Resource {
    /// The resource's path relative to the log's prefix.
    pub fn path(&self) -> String {
        match self {
            Resource::Checkpoint => "checkpoint".into(),
            Resource::Tile { level, index, width } => {
                format!("tile/{level}/{}{}", encode_index(*index), width_suffix(*width))
            }
            Resource::Entries { index, width } => {
                format!("tile/entries/{}{}", encode_index(*index), width_suffix(*width))
            }
        }
    }

    /// Parses a path relative to the prefix. Only the canonical spelling is
    /// accepted (no leading zeros beyond the 3-digit groups, no `x000`
    /// lead group, no `.p/256`), so each resource has exactly one path.
    pub fn parse(path: &str) -> Result<Resource, TrustError> {
        let bad = || TrustError::Malformed(format!("{path:?} is not a tlog-tiles resource path"));
        if path == "checkpoint" {
            return Ok(Resource::Checkpoint);
        }
        let rest = path.strip_prefix("tile/").ok_or_else(bad)?;
        let (head, rest) = rest.split_once('/').ok_or_else(bad)?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let w: u16 = parse_decimal(w).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
                if w == 0 || u64::from(w) >= TILE_WIDTH {
                    return Err(bad());
                }
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = decode_index(index_part).ok_or_else(bad)?;
        if head == "entries" {
            return Ok(Resource::Entries { index, width });
        }
        let level = parse_decimal(head).ok_or_else(bad)?;
        let level = u8::try_from(level).ok().filter(|l| *l < 64).ok_or_else(bad)?;
        Ok(Resource::Tile { level, index, width })
    }
}

fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// Parses `x001/x234/067`; rejects any other spelling of the number.
pub fn decode_index(s: &str) -> Option<u64> {
    let parts: Vec<&str> = s.split('/').collect();
    let (last, leads) = parts.split_last()?;
    let mut n: u64 = 0;
    for (i, p) in leads.iter().enumerate() {
        let digits = p.strip_prefix('x')?;
        if digits.len() != 3
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (i == 0 && digits == "000")
        {
            return None;
        }
        n = n.checked_mul(1000)?.checked_add(digits.parse().ok()?)?;
    }
    if last.len() != 3 || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    n.checked_mul(1000)?.checked_add(last.parse().ok()?)
}

/// The width a tile (or bundle) `index` at `level` has in a tree of `size`
/// leaves: 256, a partial width, or `None` when the tree has no such tile.
pub fn tile_width(size: u64, level: u8, index: u64) -> Option<u16> {
    let hashes =
        if level == 0 { size } else { size.checked_shr(8 * u32::from(level)).unwrap_or(0) };
    let start = index.checked_mul(TILE_WIDTH)?;
    if start >= hashes {
        return None;
    }
    Some((hashes - start).min(TILE_WIDTH) as u16)
}

/// The bytes of hash tile `level`/`index` of width `width`: the hashes
/// concatenated. `None` when the tree does not (yet) hold them all.
pub fn tile_bytes(tree: &Tree, level: u8, index: u64, width: u16) -> Option<Vec<u8>> {
    let hashes = tree.tile_level(usize::from(level));
    let start = usize::try_from(index.checked_mul(TILE_WIDTH)?).ok()?;
    let end = start.checked_add(usize::from(width))?;
    let slice = hashes.get(start..end)?;
    Some(slice.iter().flatten().copied().collect())
}

/// Encodes an entry bundle: each entry as a big-endian uint16 length and its bytes.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TrustError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| {
            TrustError::Invalid(format!(
                "an entry of {} bytes does not fit a tlog-tiles bundle (at most {MAX_ENTRY_BYTES})",
                e.len()
            ))
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// Splits an entry bundle into its entries; a truncated bundle is malformed.
pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<&[u8]>, TrustError> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let [a, b, tail @ ..] = rest else {
            return Err(TrustError::Malformed("entry bundle ends inside a length".into()));
        };
        let len = usize::from(u16::from_be_bytes([*a, *b]));
        if tail.len() < len {
            return Err(TrustError::Malformed("entry bundle ends inside an entry".into()));
        }
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle::{leaf_hash, node_hash};

    #[test]
    fn index_paths_follow_the_spec_example() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        for n in [0u64, 5, 999, 1000, 1_234_067, u64::MAX] {
            assert_eq!(decode_index(&encode_index(n)), Some(n));
        }
        for bad in ["1", "0001", "x000/001", "x1/001", "001/", "x001", "y001/001", "00a"] {
            assert_eq!(decode_index(bad), None, "{bad}");
        }
    }

    #[test]
    fn resource_paths_round_trip_and_reject_other_spellings() {
        let cases = [
            (Resource::Checkpoint, "checkpoint"),
            (Resource::Tile { level: 0, index: 1_234_067, width: 256 }, "tile/0/x001/x234/067"),
            (Resource::Tile { level: 1, index: 0, width: 7 }, "tile/1/000.p/7"),
            (Resource::Entries { index: 1000, width: 255 }, "tile/entries/x001/000.p/255"),
        ];
        for (r, p) in cases {
            assert_eq!(r.path(), p);
            assert_eq!(Resource::parse(p).unwrap(), r);
        }
        for bad in [
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/0/000.p/07",
            "tile/64/000",
            "tile/01/000",
            "tile/0/00",
            "tile/entries/000.p/",
            "tiles/0/000",
            "checkpoint/",
        ] {
            assert!(Resource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tiles_of_a_tree_and_their_widths() {
        let mut t = Tree::new();
        for i in 0..600u32 {
            t.push(&i.to_be_bytes());
        }
        assert_eq!(tile_width(600, 0, 0), Some(256));
        assert_eq!(tile_width(600, 0, 2), Some(88));
        assert_eq!(tile_width(600, 0, 3), None);
        assert_eq!(tile_width(600, 1, 0), Some(2));
        assert_eq!(tile_width(600, 2, 0), None);
        let t0 = tile_bytes(&t, 0, 2, 88).unwrap();
        assert_eq!(t0.len(), 88 * 32);
        assert_eq!(&t0[..32], &leaf_hash(&512u32.to_be_bytes()));
        // The level-1 tile's first hash is the root of the first 256 leaves.
        let t1 = tile_bytes(&t, 1, 0, 2).unwrap();
        assert_eq!(&t1[..32], &t.root(256).unwrap());
        assert_eq!(
            node_hash(t1[..32].try_into().unwrap(), t1[32..].try_into().unwrap()),
            t.root(512).unwrap()
        );
        assert_eq!(tile_bytes(&t, 0, 2, 89), None);
    }

    #[test]
    fn bundles_round_trip_and_reject_truncation() {
        let entries: Vec<&[u8]> = vec![b"a", b"", &[7u8; 300]];
        let b = encode_bundle(entries.iter().copied()).unwrap();
        assert_eq!(&b[..5], &[0, 1, b'a', 0, 0]);
        assert_eq!(decode_bundle(&b).unwrap(), entries);
        assert!(decode_bundle(&b[..b.len() - 1]).is_err());
        assert!(decode_bundle(&b[..1]).is_err());
        let big = vec![0u8; 65_536];
        assert!(encode_bundle([big.as_slice()]).is_err());
    }
}
