//! The RFC 9162 Merkle tree (SHA-256), kept as its tlog-tiles hashes.
//!
//! [`Tree`] stores exactly what the C2SP tlog-tiles hash tiles hold: the
//! hashes at tree levels 0, 8, 16, … (tile levels 0, 1, 2, …), each the hash
//! of a complete subtree of 256^L leaves. Every other node is recomputed from
//! at most 255 of them, so the state is ~32 bytes per leaf and an append
//! costs one leaf hash plus, on average, just over one node hash.
//!
//! Proof generation follows RFC 9162 §2.1.3.1 (PATH) and §2.1.4.1 (PROOF and
//! SUBPROOF); verification follows §2.1.3.2 and §2.1.4.2 to the letter, so a
//! proof made here checks with any other implementation of the RFC.

use sha2::{Digest, Sha256};

use crate::{Hash, TrustError};

/// Leaves per full tile, and the branching between tile levels (tile height 8).
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level (the tlog-tiles tile height).
pub const TILE_HEIGHT: u32 = 8;

/// RFC 9162 leaf hash: SHA-256(0x00 || entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree, SHA-256 of nothing (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly below `n` (n ≥ 2): RFC 9162's `k`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// An append-only Merkle tree whose stored state is its tlog-tiles hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    /// `levels[L][i]`: the hash of leaves `[i·256^L, (i+1)·256^L)`.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree { levels: vec![Vec::new()] }
    }

    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    /// Appends one entry (hashing it as a leaf) and returns its leaf index.
    pub fn push(&mut self, entry: &[u8]) -> u64 {
        self.push_hash(leaf_hash(entry))
    }

    /// Appends a leaf by its leaf hash (for rebuilding from stored hashes)
    /// and completes every tile-level hash the new leaf finishes.
    pub fn push_hash(&mut self, leaf: Hash) -> u64 {
        if self.levels.is_empty() {
            self.levels.push(Vec::new());
        }
        self.levels[0].push(leaf);
        let index = self.levels[0].len() as u64 - 1;
        let mut level = 0;
        while self.levels[level].len() as u64 % TILE_WIDTH == 0 {
            let full = &self.levels[level][self.levels[level].len() - TILE_WIDTH as usize..];
            let up = reduce(full);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.levels[level + 1].push(up);
            level += 1;
        }
        index
    }

    /// The leaf hash at `index`, if the tree has it.
    pub fn leaf(&self, index: u64) -> Option<Hash> {
        self.levels.first()?.get(usize::try_from(index).ok()?).copied()
    }

    /// The stored hashes of tile level `level` (tree level 8·level).
    pub fn tile_level(&self, level: usize) -> &[Hash] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// The hash of the complete subtree of 2^`height` leaves starting at
    /// leaf `index << height`; the subtree must lie within the tree.
    fn subtree(&self, height: u32, index: u64) -> Hash {
        let level = (height / TILE_HEIGHT) as usize;
        let rest = height % TILE_HEIGHT;
        let start = (index << rest) as usize;
        reduce(&self.levels[level][start..start + (1usize << rest)])
    }

    /// MTH(D[lo:hi]) for a range RFC 9162's recursion produces (`lo` is a
    /// multiple of the largest power of two not above `hi − lo`).
    fn mth(&self, lo: u64, hi: u64) -> Hash {
        let n = hi - lo;
        if n.is_power_of_two() && lo % n == 0 {
            return self.subtree(n.trailing_zeros(), lo / n);
        }
        let k = split_point(n);
        node_hash(&self.mth(lo, lo + k), &self.mth(lo + k, hi))
    }

    fn check_size(&self, size: u64) -> Result<(), TrustError> {
        if size > self.size() {
            return Err(TrustError::Invalid(format!(
                "tree size {size} is beyond the tree's {} leaves",
                self.size()
            )));
        }
        Ok(())
    }

    /// The root hash of the tree's first `size` leaves.
    pub fn root(&self, size: u64) -> Result<Hash, TrustError> {
        self.check_size(size)?;
        Ok(if size == 0 { empty_root() } else { self.mth(0, size) })
    }

    /// The inclusion proof of leaf `index` in the tree of the first `size`
    /// leaves (RFC 9162 §2.1.3.1), leaf-side first.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, TrustError> {
        self.check_size(size)?;
        if index >= size {
            return Err(TrustError::Invalid(format!(
                "leaf index {index} is not in a tree of size {size}"
            )));
        }
        let mut out = Vec::new();
        self.path(index, 0, size, &mut out);
        Ok(out)
    }

    fn path(&self, m: u64, lo: u64, hi: u64, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = split_point(n);
        if m < k {
            self.path(m, lo, lo + k, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.path(m - k, lo + k, hi, out);
            out.push(self.mth(lo, lo + k));
        }
    }

    /// The consistency proof between the trees of the first `old` and the
    /// first `new` leaves (RFC 9162 §2.1.4.1); 0 < old ≤ new.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, TrustError> {
        self.check_size(new)?;
        if old == 0 || old > new {
            return Err(TrustError::Invalid(format!(
                "a consistency proof needs 0 < old size ≤ new size, not {old} and {new}"
            )));
        }
        let mut out = Vec::new();
        self.subproof(old, 0, new, true, &mut out);
        Ok(out)
    }

    fn subproof(&self, m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Hash>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(self.mth(lo, hi));
            }
            return;
        }
        let k = split_point(n);
        if m <= k {
            self.subproof(m, lo, lo + k, whole, out);
            out.push(self.mth(lo + k, hi));
        } else {
            self.subproof(m - k, lo + k, hi, false, out);
            out.push(self.mth(lo, lo + k));
        }
    }
}

/// The root of a complete subtree given its 2^h hashes at its bottom level.
fn reduce(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    if hashes.len() == 1 {
        return hashes[0];
    }
    let mut cur: Vec<Hash> = hashes.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    while cur.len() > 1 {
        cur = cur.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    cur[0]
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): that the leaf with hash
/// `leaf` is at `index` in the tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), TrustError> {
    let fail = |why: &str| Err(TrustError::Verification(format!("inclusion proof: {why}")));
    if index >= size {
        return fail("the leaf index is not below the tree size");
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return fail("the proof is longer than the tree is deep");
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return fail("the proof is shorter than the tree is deep");
    }
    if &r != root {
        return fail("the recomputed root differs from the checkpoint's root");
    }
    Ok(())
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): that the tree of `new`
/// leaves with root `new_root` extends the tree of `old` leaves with root
/// `old_root`. Equal sizes need an empty proof and equal roots.
pub fn verify_consistency(
    old: u64,
    new: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> Result<(), TrustError> {
    let fail = |why: &str| Err(TrustError::Verification(format!("consistency proof: {why}")));
    if old == 0 || old > new {
        return fail("the sizes must satisfy 0 < old ≤ new");
    }
    if old == new {
        if !proof.is_empty() {
            return fail("equal sizes need an empty proof");
        }
        if old_root != new_root {
            return fail("equal sizes with different roots");
        }
        return Ok(());
    }
    if proof.is_empty() {
        return fail("the proof is empty");
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return fail("the proof is longer than the trees are deep");
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return fail("the proof is shorter than the trees are deep");
    }
    if &fr != old_root {
        return fail("the recomputed old root differs");
    }
    if &sr != new_root {
        return fail("the recomputed new root differs");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn h(s: &str) -> Hash {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
    }

    /// The certificate-transparency / RFC 6962 test leaves and roots.
    const LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];
    const ROOTS: [&str; 8] = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];

    fn vector_tree() -> Tree {
        let mut t = Tree::new();
        for l in LEAVES {
            t.push(&unhex(l));
        }
        t
    }

    #[test]
    fn rfc6962_roots_and_empty_tree() {
        let t = vector_tree();
        for (i, r) in ROOTS.iter().enumerate() {
            assert_eq!(t.root(i as u64 + 1).unwrap(), h(r), "root of size {}", i + 1);
        }
        assert_eq!(
            t.root(0).unwrap(),
            h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert!(t.root(9).is_err());
    }

    #[test]
    fn rfc6962_inclusion_vectors() {
        let t = vector_tree();
        let want = [
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ];
        assert_eq!(t.inclusion_proof(5, 8).unwrap(), want);
        let leaf = leaf_hash(&unhex(LEAVES[5]));
        verify_inclusion(5, 8, &leaf, &want, &h(ROOTS[7])).unwrap();
        assert!(verify_inclusion(4, 8, &leaf, &want, &h(ROOTS[7])).is_err());
        assert_eq!(t.inclusion_proof(2, 3).unwrap(), vec![h(ROOTS[1])]);
        assert_eq!(t.inclusion_proof(0, 1).unwrap(), Vec::<Hash>::new());
    }

    #[test]
    fn rfc6962_consistency_vectors() {
        let t = vector_tree();
        let p68 = vec![
            h("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            h("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            h("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ];
        assert_eq!(t.consistency_proof(6, 8).unwrap(), p68);
        verify_consistency(6, 8, &p68, &h(ROOTS[5]), &h(ROOTS[7])).unwrap();
        assert!(verify_consistency(6, 8, &p68, &h(ROOTS[4]), &h(ROOTS[7])).is_err());
        let p25 = vec![
            h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ];
        assert_eq!(t.consistency_proof(2, 5).unwrap(), p25);
        verify_consistency(2, 5, &p25, &h(ROOTS[1]), &h(ROOTS[4])).unwrap();
        assert_eq!(t.consistency_proof(1, 8).unwrap().len(), 3);
        assert!(t.consistency_proof(0, 3).is_err());
        assert!(t.consistency_proof(4, 3).is_err());
    }

    /// An independent recomputation: RFC 9162's recursive definitions over
    /// the leaf list, with no stored levels at all.
    mod naive {
        use super::super::{leaf_hash, node_hash, split_point};
        use crate::Hash;

        pub fn mth(leaves: &[Vec<u8>]) -> Hash {
            match leaves.len() {
                0 => super::super::empty_root(),
                1 => leaf_hash(&leaves[0]),
                n => {
                    let k = split_point(n as u64) as usize;
                    node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
                }
            }
        }

        pub fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<Hash> {
            let n = leaves.len();
            if n <= 1 {
                return vec![];
            }
            let k = split_point(n as u64) as usize;
            if m < k {
                let mut p = path(m, &leaves[..k]);
                p.push(mth(&leaves[k..]));
                p
            } else {
                let mut p = path(m - k, &leaves[k..]);
                p.push(mth(&leaves[..k]));
                p
            }
        }

        pub fn subproof(m: usize, leaves: &[Vec<u8>], whole: bool) -> Vec<Hash> {
            let n = leaves.len();
            if m == n {
                return if whole { vec![] } else { vec![mth(leaves)] };
            }
            let k = split_point(n as u64) as usize;
            if m <= k {
                let mut p = subproof(m, &leaves[..k], whole);
                p.push(mth(&leaves[k..]));
                p
            } else {
                let mut p = subproof(m - k, &leaves[k..], false);
                p.push(mth(&leaves[..k]));
                p
            }
        }
    }

    fn entries(n: usize) -> Vec<Vec<u8>> {
        (0..n).map(|i| format!("entry {i}").into_bytes()).collect()
    }

    /// Every size 1..=N (crossing the first full tile and into the second
    /// tile level's first hashes), every index and every older size, against
    /// the recursive definitions.
    #[test]
    fn every_size_against_an_independent_recomputation() {
        let n = 300;
        let all = entries(n);
        let mut t = Tree::new();
        for (i, e) in all.iter().enumerate() {
            assert_eq!(t.push(e), i as u64);
        }
        for size in 1..=n {
            let root = t.root(size as u64).unwrap();
            assert_eq!(root, naive::mth(&all[..size]), "root {size}");
            // Every index and older size up to 80 and around the first full
            // tile; elsewhere the ends and the middle (the recursive
            // definitions are quadratic per size).
            let all_of = |k: usize| -> Vec<usize> {
                if size <= 80 || (255..=257).contains(&size) {
                    (0..k).collect()
                } else {
                    vec![0, 1, k / 2, k - 2, k - 1]
                }
            };
            for idx in all_of(size) {
                let p = t.inclusion_proof(idx as u64, size as u64).unwrap();
                assert_eq!(p, naive::path(idx, &all[..size]), "path {idx} in {size}");
                verify_inclusion(idx as u64, size as u64, &leaf_hash(&all[idx]), &p, &root)
                    .unwrap();
            }
            for old in all_of(size).into_iter().map(|o| o + 1) {
                let p = t.consistency_proof(old as u64, size as u64).unwrap();
                assert_eq!(p, naive::subproof(old, &all[..size], true), "proof {old} → {size}");
                let old_root = t.root(old as u64).unwrap();
                verify_consistency(old as u64, size as u64, &p, &old_root, &root).unwrap();
            }
        }
    }

    #[test]
    fn second_tile_level_fills_at_65536() {
        let mut t = Tree::new();
        for i in 0..65_536u32 {
            t.push_hash(leaf_hash(&i.to_be_bytes()));
        }
        assert_eq!(t.tile_level(1).len(), 256);
        assert_eq!(t.tile_level(2).len(), 1);
        assert_eq!(t.tile_level(2)[0], t.root(65_536).unwrap());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// A tampered leaf, a tampered root or a tampered proof hash fails.
        #[test]
        fn tampering_fails(size in 1u64..200, idx_seed: u64, flip in 0usize..32, which in 0usize..3, old_seed: u64) {
            let all = entries(size as usize);
            let mut t = Tree::new();
            for e in &all {
                t.push(e);
            }
            let idx = idx_seed % size;
            let root = t.root(size).unwrap();
            let mut leaf = leaf_hash(&all[idx as usize]);
            let mut proof = t.inclusion_proof(idx, size).unwrap();
            let mut bad_root = root;
            match which {
                0 => leaf[flip] ^= 1,
                1 => bad_root[flip] ^= 1,
                _ => {
                    if proof.is_empty() {
                        leaf[flip] ^= 1;
                    } else {
                        let j = flip % proof.len();
                        proof[j][flip] ^= 1;
                    }
                }
            }
            prop_assert!(verify_inclusion(idx, size, &leaf, &proof, &bad_root).is_err());

            let old = 1 + old_seed % size;
            let mut cp = t.consistency_proof(old, size).unwrap();
            let mut old_root = t.root(old).unwrap();
            let mut new_root = root;
            match which {
                0 => old_root[flip] ^= 1,
                1 => new_root[flip] ^= 1,
                _ => {
                    if cp.is_empty() {
                        old_root[flip] ^= 1;
                    } else {
                        let j = flip % cp.len();
                        cp[j][flip] ^= 1;
                    }
                }
            }
            prop_assert!(verify_consistency(old, size, &cp, &old_root, &new_root).is_err());
        }
    }
}
