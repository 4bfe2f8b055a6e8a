//! Proof and receipt files: JSON an outsider checks offline with a vkey.
//!
//! Every hash is standard base64 (as in checkpoints), every leaf the entry's
//! bytes in base64, and every file carries the signed checkpoint note(s) it
//! is proven against, so [`check`] needs nothing but the file and the log's
//! verifier key. The checks are exactly RFC 9162's; the note and
//! checkpoint are C2SP's, so any verifier of those standards reaches the
//! same answer from the same fields.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::checkpoint::Checkpoint;
use crate::merkle::{leaf_hash, verify_consistency, verify_inclusion};
use crate::note::NoteVerifier;
use crate::{Algorithms, Hash, TrustError};

/// The format tag of every file this module writes.
pub const FORMAT: &str = "gridcase-proof/1";

/// A hash in JSON: standard base64 of its 32 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct B64Hash(pub Hash);

impl Serialize for B64Hash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(self.0))
    }
}

impl<'de> Deserialize<'de> for B64Hash {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let v = B64.decode(&s).map_err(serde::de::Error::custom)?;
        let h: Hash =
            v.try_into().map_err(|_| serde::de::Error::custom("a hash is 32 bytes of base64"))?;
        Ok(B64Hash(h))
    }
}

/// Bytes in JSON: standard base64.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct B64Bytes(pub Vec<u8>);

impl Serialize for B64Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&B64.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        B64.decode(&s).map(B64Bytes).map_err(serde::de::Error::custom)
    }
}

/// One entry proven included: its place, its bytes and its audit path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncludedEntry {
    /// The record's log position (leaf index + 1).
    pub position: u64,
    /// The RFC 9162 leaf index.
    pub leaf_index: u64,
    /// The entry (the record's canonical bytes); its leaf hash is
    /// recomputed from it. Absent where the reader may not see the record
    /// (a public proof carries only `leaf_hash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf: Option<B64Bytes>,
    /// The RFC 9162 leaf hash, SHA-256(0x00 ‖ entry); must match `leaf`
    /// when both are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_hash: Option<B64Hash>,
    /// The audit path, leaf side first (RFC 9162 §2.1.3.1).
    pub inclusion_proof: Vec<B64Hash>,
}

/// Entries proven included in the tree of a signed checkpoint: an
/// inclusion proof (one entry) or a resident's receipt (a case's events).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InclusionFile {
    /// [`FORMAT`].
    pub format: String,
    /// The algorithms of the tree and signature.
    pub algorithms: Algorithms,
    /// The case whose events these are, for a receipt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// The signed checkpoint note the proofs are against.
    pub checkpoint: String,
    /// The entries.
    pub entries: Vec<IncludedEntry>,
}

/// A consistency proof between two signed checkpoints of one log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsistencyFile {
    /// [`FORMAT`].
    pub format: String,
    /// The algorithms of the tree and signature.
    pub algorithms: Algorithms,
    /// The older signed checkpoint note.
    pub old_checkpoint: String,
    /// The newer signed checkpoint note.
    pub checkpoint: String,
    /// The RFC 9162 §2.1.4.1 proof.
    pub consistency_proof: Vec<B64Hash>,
}

/// Any file [`check`] accepts, told apart by its `kind`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProofFile {
    /// One or more entries in one tree.
    Inclusion(InclusionFile),
    /// A case's events in one tree.
    Receipt(InclusionFile),
    /// Two trees, the newer extending the older.
    Consistency(ConsistencyFile),
}

/// What a successful [`check`] established.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checked {
    /// `inclusion`, `receipt` or `consistency`.
    pub kind: &'static str,
    /// The log's origin.
    pub origin: String,
    /// The (newer) checkpoint's tree size.
    pub tree_size: u64,
    /// The older checkpoint's size, for a consistency proof.
    pub old_size: Option<u64>,
    /// The positions proven included.
    pub positions: Vec<u64>,
}

impl ProofFile {
    /// Parses a file's JSON; anything that does not fit is malformed.
    pub fn from_json(text: &str) -> Result<ProofFile, TrustError> {
        serde_json::from_str(text)
            .map_err(|e| TrustError::Malformed(format!("not a proof or receipt file: {e}")))
    }

    /// The file's JSON, pretty-printed.
    pub fn to_json(&self) -> String {
        // Serialising these plain structs cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Checks a proof or receipt file with the log's verifier key alone.
/// `checkpoint` replaces the file's (newer) checkpoint note when given, so
/// an auditor can check a proof against a checkpoint they fetched
/// themselves; the proof must then be for that checkpoint's size.
pub fn check(
    file: &ProofFile,
    verifier: &NoteVerifier,
    checkpoint: Option<&str>,
) -> Result<Checked, TrustError> {
    match file {
        ProofFile::Inclusion(f) | ProofFile::Receipt(f) => {
            header(&f.format, &f.algorithms)?;
            let kind = if matches!(file, ProofFile::Receipt(_)) { "receipt" } else { "inclusion" };
            let cp = Checkpoint::open(checkpoint.unwrap_or(&f.checkpoint), verifier)?;
            same_size(checkpoint, &f.checkpoint, cp.size, verifier)?;
            if f.entries.is_empty() {
                return Err(TrustError::Malformed("the file proves no entry".into()));
            }
            let mut positions = Vec::with_capacity(f.entries.len());
            for e in &f.entries {
                if e.position != e.leaf_index.wrapping_add(1) {
                    return Err(TrustError::Malformed(format!(
                        "position {} is not leaf index {} + 1",
                        e.position, e.leaf_index
                    )));
                }
                let proof: Vec<Hash> = e.inclusion_proof.iter().map(|h| h.0).collect();
                let leaf = match (&e.leaf, &e.leaf_hash) {
                    (Some(bytes), given) => {
                        let h = leaf_hash(&bytes.0);
                        if given.is_some_and(|g| g.0 != h) {
                            return Err(TrustError::Verification(format!(
                                "position {}: the leaf hash is not the hash of the leaf",
                                e.position
                            )));
                        }
                        h
                    }
                    (None, Some(h)) => h.0,
                    (None, None) => {
                        return Err(TrustError::Malformed(format!(
                            "position {}: neither the leaf nor its hash is given",
                            e.position
                        )))
                    }
                };
                verify_inclusion(e.leaf_index, cp.size, &leaf, &proof, &cp.root).map_err(
                    |err| match err {
                        TrustError::Verification(m) => {
                            TrustError::Verification(format!("position {}: {m}", e.position))
                        }
                        other => other,
                    },
                )?;
                positions.push(e.position);
            }
            Ok(Checked { kind, origin: cp.origin, tree_size: cp.size, old_size: None, positions })
        }
        ProofFile::Consistency(f) => {
            header(&f.format, &f.algorithms)?;
            let old = Checkpoint::open(&f.old_checkpoint, verifier)?;
            let new = Checkpoint::open(checkpoint.unwrap_or(&f.checkpoint), verifier)?;
            same_size(checkpoint, &f.checkpoint, new.size, verifier)?;
            let proof: Vec<Hash> = f.consistency_proof.iter().map(|h| h.0).collect();
            verify_consistency(old.size, new.size, &proof, &old.root, &new.root)?;
            Ok(Checked {
                kind: "consistency",
                origin: new.origin,
                tree_size: new.size,
                old_size: Some(old.size),
                positions: Vec::new(),
            })
        }
    }
}

/// With a checkpoint given in place of the file's own, the proofs must be
/// for its size: say so plainly rather than as a root mismatch.
fn same_size(
    given: Option<&str>,
    own: &str,
    size: u64,
    verifier: &NoteVerifier,
) -> Result<(), TrustError> {
    if given.is_none() {
        return Ok(());
    }
    if let Ok(own) = Checkpoint::open(own, verifier) {
        if own.size != size {
            return Err(TrustError::Verification(format!(
                "the file's proofs are for the tree of size {}, the checkpoint given is of size {size}",
                own.size
            )));
        }
    }
    Ok(())
}

fn header(format: &str, algorithms: &Algorithms) -> Result<(), TrustError> {
    if format != FORMAT {
        return Err(TrustError::Malformed(format!(
            "unknown format {format:?}; expected {FORMAT:?}"
        )));
    }
    algorithms.check_supported()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::merkle::Tree;
    use crate::note::NoteSigner;

    fn setup() -> (NoteSigner, Tree, Vec<Vec<u8>>) {
        let signer = NoteSigner::generate("test.example/log").unwrap();
        let entries: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; usize::from(i) + 1]).collect();
        let mut t = Tree::new();
        for e in &entries {
            t.push(e);
        }
        (signer, t, entries)
    }

    fn note(signer: &NoteSigner, t: &Tree, size: u64) -> String {
        Checkpoint { origin: signer.name().into(), size, root: t.root(size).unwrap() }
            .sign(signer)
            .unwrap()
    }

    fn receipt(
        signer: &NoteSigner,
        t: &Tree,
        entries: &[Vec<u8>],
        size: u64,
        idx: &[u64],
    ) -> ProofFile {
        ProofFile::Receipt(InclusionFile {
            format: FORMAT.into(),
            algorithms: Algorithms::current(),
            case: Some("GC0000001".into()),
            checkpoint: note(signer, t, size),
            entries: idx
                .iter()
                .map(|&i| IncludedEntry {
                    position: i + 1,
                    leaf_index: i,
                    leaf: Some(B64Bytes(entries[i as usize].clone())),
                    leaf_hash: None,
                    inclusion_proof: t
                        .inclusion_proof(i, size)
                        .unwrap()
                        .into_iter()
                        .map(B64Hash)
                        .collect(),
                })
                .collect(),
        })
    }

    #[test]
    fn a_receipt_round_trips_through_json_and_checks() {
        let (signer, t, entries) = setup();
        let r = receipt(&signer, &t, &entries, 17, &[0, 5, 16]);
        let back = ProofFile::from_json(&r.to_json()).unwrap();
        assert_eq!(back, r);
        let ok = check(&back, &signer.verifier(), None).unwrap();
        assert_eq!(ok.positions, vec![1, 6, 17]);
        assert_eq!(ok.tree_size, 17);
        // Another checkpoint of the same log at another size: the proofs
        // are not for it.
        assert!(check(&back, &signer.verifier(), Some(&note(&signer, &t, 18))).is_err());
        // Another key.
        let other = NoteSigner::generate("test.example/log").unwrap();
        assert!(check(&back, &other.verifier(), None).is_err());
    }

    #[test]
    fn a_changed_leaf_byte_or_position_fails() {
        let (signer, t, entries) = setup();
        let ProofFile::Receipt(mut f) = receipt(&signer, &t, &entries, 20, &[3]) else {
            unreachable!()
        };
        let leaf = f.entries[0].leaf.clone().unwrap();
        f.entries[0].leaf.as_mut().unwrap().0[0] ^= 1;
        assert!(matches!(
            check(&ProofFile::Receipt(f.clone()), &signer.verifier(), None),
            Err(TrustError::Verification(_))
        ));
        // The hash alone proves the same; a hash that is not the leaf's fails.
        f.entries[0].leaf = None;
        f.entries[0].leaf_hash = Some(B64Hash(leaf_hash(&leaf.0)));
        check(&ProofFile::Receipt(f.clone()), &signer.verifier(), None).unwrap();
        f.entries[0].leaf = Some(B64Bytes(vec![1]));
        assert!(check(&ProofFile::Receipt(f.clone()), &signer.verifier(), None).is_err());
        f.entries[0].leaf = None;
        f.entries[0].leaf_hash = None;
        assert!(matches!(
            check(&ProofFile::Receipt(f.clone()), &signer.verifier(), None),
            Err(TrustError::Malformed(_))
        ));
        f.entries[0].leaf = Some(leaf);
        f.entries[0].position = 5;
        assert!(check(&ProofFile::Receipt(f), &signer.verifier(), None).is_err());
    }

    #[test]
    fn consistency_between_two_signed_checkpoints() {
        let (signer, t, _) = setup();
        let f = ProofFile::Consistency(ConsistencyFile {
            format: FORMAT.into(),
            algorithms: Algorithms::current(),
            old_checkpoint: note(&signer, &t, 6),
            checkpoint: note(&signer, &t, 20),
            consistency_proof: t
                .consistency_proof(6, 20)
                .unwrap()
                .into_iter()
                .map(B64Hash)
                .collect(),
        });
        let ok =
            check(&ProofFile::from_json(&f.to_json()).unwrap(), &signer.verifier(), None).unwrap();
        assert_eq!((ok.old_size, ok.tree_size), (Some(6), 20));
        assert!(check(&f, &signer.verifier(), Some(&note(&signer, &t, 19))).is_err());
    }

    #[test]
    fn another_profile_is_refused_not_misread() {
        let (signer, t, entries) = setup();
        let ProofFile::Receipt(mut f) = receipt(&signer, &t, &entries, 20, &[3]) else {
            unreachable!()
        };
        f.algorithms.merkle_hash = "sm3".into();
        assert!(matches!(
            check(&ProofFile::Receipt(f), &signer.verifier(), None),
            Err(TrustError::Malformed(_))
        ));
        assert!(ProofFile::from_json("{\"kind\":\"nope\"}").is_err());
    }
}
