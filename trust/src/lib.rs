//! Transparency formats for the gridcase log, independent of any store.
//!
//! - [`merkle`]: the RFC 9162 Merkle tree over the records' canonical bytes
//!   (SHA-256, leaf prefix 0x00, node prefix 0x01), kept incrementally as
//!   its tlog-tiles hashes, with inclusion and consistency proofs and their
//!   verification per RFC 9162 §2.1.3–2.1.4.
//! - [`tiles`]: the C2SP tlog-tiles resource paths, hash tiles and entry bundles.
//! - [`note`]: C2SP signed notes, Ed25519 signer and verifier keys in the
//!   `golang.org/x/mod/sumdb/note` encodings (the vkey form).
//! - [`checkpoint`]: the C2SP tlog-checkpoint body.
//! - [`proof`]: the JSON proof and receipt files and their offline check.
//!
//! Every artefact names its algorithms ([`Algorithms`]) so that another
//! profile (SM3 / SM2 / SM4 under GB/T 39786-2021) can be added as a choice
//! without a format break; this build implements the one profile below and
//! refuses artefacts that name another.

pub mod checkpoint;
pub mod merkle;
pub mod note;
pub mod proof;
pub mod tiles;

use serde::{Deserialize, Serialize};

/// A SHA-256 digest: a leaf, a node or a root of the Merkle tree.
pub type Hash = [u8; 32];

/// What can go wrong with a transparency artefact.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    /// The input does not parse (a key, a note, a checkpoint, a proof file):
    /// the caller must fix it.
    #[error("{0}")]
    Malformed(String),
    /// A well-formed request that cannot be answered (a size beyond the
    /// tree, an index outside it, an entry too large for a bundle).
    #[error("{0}")]
    Invalid(String),
    /// A proof or signature that does not check out: the evidence is wrong.
    #[error("verification failed: {0}")]
    Verification(String),
    /// The system failed underneath (no randomness for a key).
    #[error("{0}")]
    Io(String),
}

/// The algorithms an artefact or a store uses, by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Algorithms {
    /// The hash that chains each record to the one before (`blake3`).
    pub chain_hash: String,
    /// The Merkle tree's hash (`rfc9162-sha256`).
    pub merkle_hash: String,
    /// The checkpoint signature (`ed25519`, C2SP signed-note type 0x01).
    pub signature: String,
    /// Encryption of stored records (`none`: records are stored in clear).
    pub encryption: String,
}

impl Algorithms {
    /// The profile this build writes and verifies.
    pub fn current() -> Algorithms {
        Algorithms {
            chain_hash: "blake3".into(),
            merkle_hash: "rfc9162-sha256".into(),
            signature: "ed25519".into(),
            encryption: "none".into(),
        }
    }

    /// Refuses an artefact whose Merkle hash or signature this build does
    /// not implement (the chain hash and encryption do not enter a proof).
    pub fn check_supported(&self) -> Result<(), TrustError> {
        let cur = Algorithms::current();
        if self.merkle_hash != cur.merkle_hash || self.signature != cur.signature {
            return Err(TrustError::Malformed(format!(
                "the artefact uses merkle hash {:?} and signature {:?}; this build verifies {:?} with {:?}",
                self.merkle_hash, self.signature, cur.merkle_hash, cur.signature
            )));
        }
        Ok(())
    }
}

impl Default for Algorithms {
    fn default() -> Self {
        Algorithms::current()
    }
}
