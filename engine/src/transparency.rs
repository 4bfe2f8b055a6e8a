//! The log's Merkle tree, signed checkpoints and proofs, kept beside any
//! [`EventLog`] as derived state.
//!
//! [`Transparency`] follows the log like a projection does: each record's
//! canonical bytes (exactly as stored, their BLAKE3 checked against the
//! record's hash) become leaf `position − 1` of an RFC 9162 tree
//! ([`gridcase_trust::merkle::Tree`]). It never slows the write path: the
//! server's follower hashes new records after they commit, and a command
//! line tool catches up when it opens the store.
//!
//! The tree is derived state. At a signed checkpoint its leaf hashes are
//! saved in the store (`trust/tree`, with the chain hash of the record it
//! ends at); at open they are used only if intact and if the log's record
//! at that position still has that hash, otherwise the tree is rebuilt from
//! the records. Signed checkpoints are saved too (`trust/checkpoint/…`):
//! they are kept as derived state rather than appended to the log, because
//! every reader of the log (the engine's fold, the projections, Open311,
//! the exports) would otherwise have to learn a non-domain event, and a
//! checkpoint's evidence is its signature, not its place in the log.

use std::sync::{Arc, RwLock};

use gridcase_trust::checkpoint::Checkpoint;
use gridcase_trust::merkle::Tree;
use gridcase_trust::note::{NoteSigner, NoteVerifier};
use gridcase_trust::proof::{B64Bytes, B64Hash, ConsistencyFile, IncludedEntry, InclusionFile};
use gridcase_trust::tiles::{self, Resource};
use gridcase_trust::{Algorithms, Hash, TrustError};

use crate::log::{ChainVerifier, EventLog, LogError, Position, RecordView, StreamId, GENESIS_HASH};
use crate::Error;

pub use gridcase_trust;

/// Name under which the latest signed checkpoint is saved.
const LATEST: &str = "trust/checkpoint/latest";
/// Name of the store's metadata that names its algorithms.
const PROFILE_NAME: &str = "trust/algorithms";
/// Name of the saved tree (leaf hashes up to a position).
const TREE_NAME: &str = "trust/tree";
const TREE_MAGIC: &[u8] = b"gridcase-merkle-tree\0";
/// Bump when the saved tree's layout changes: an old one is then rebuilt.
const TREE_FORMAT: u32 = 1;
/// Records read per page while catching up.
const PAGE: usize = 4096;

impl From<TrustError> for Error {
    fn from(e: TrustError) -> Error {
        match e {
            TrustError::Malformed(m) | TrustError::Invalid(m) => Error::InvalidInput(m),
            TrustError::Verification(m) => Error::Internal(format!("the log's own tree: {m}")),
            TrustError::Io(m) => Error::Storage(m),
        }
    }
}

/// The name a stored signed checkpoint of `size` entries is saved under.
fn checkpoint_name(size: u64) -> String {
    // Zero-padded so that names sort by size.
    format!("trust/checkpoint/{size:020}")
}

/// A Merkle leaf: the record's canonical bytes exactly as stored
/// ([`RecordView::canonical_bytes`]: borrowed from the frame on sled).
pub fn leaf_bytes<'a>(view: &RecordView<'a>) -> Result<std::borrow::Cow<'a, [u8]>, LogError> {
    view.canonical_bytes()
}

/// A signed checkpoint: the note and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The C2SP signed note (checkpoint body and signature line).
    pub note: String,
    /// Its parsed body.
    pub checkpoint: Checkpoint,
}

/// The Merkle tree over a log, its signing key and its stored checkpoints.
pub struct Transparency {
    log: Arc<dyn EventLog>,
    origin: String,
    signer: Option<NoteSigner>,
    tree: RwLock<Tree>,
    /// One catch-up at a time (readers of the tree do not wait for it),
    /// holding the chain hash of the tree's last record: the follower
    /// checks each new record's link to it, so the tree only ever takes
    /// records that continue the chain.
    sync: tokio::sync::Mutex<Hash>,
    /// One signing at a time, so the stored latest checkpoint never goes
    /// back to a smaller tree.
    signing: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Transparency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transparency")
            .field("origin", &self.origin)
            .field("signs", &self.signer.is_some())
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl Transparency {
    /// Opens the tree over `log`, from its saved state if that still
    /// matches the log, and catches up to the head. Without a signer the
    /// tree still serves proofs and tiles, but cannot sign a checkpoint;
    /// `origin` is then only reported.
    pub async fn open(
        log: Arc<dyn EventLog>,
        origin: String,
        signer: Option<NoteSigner>,
    ) -> Result<Transparency, Error> {
        if let Some(s) = &signer {
            if s.name() != origin {
                return Err(Error::InvalidInput(format!(
                    "the log key is named {:?} but the origin is {origin:?}",
                    s.name()
                )));
            }
        }
        check_profile(log.as_ref()).await?;
        let (tree, head) = load_tree(log.as_ref()).await.unwrap_or((Tree::new(), GENESIS_HASH));
        let t = Transparency {
            log,
            origin,
            signer,
            tree: RwLock::new(tree),
            sync: tokio::sync::Mutex::new(head),
            signing: tokio::sync::Mutex::new(()),
        };
        t.sync().await?;
        Ok(t)
    }

    /// The log's origin (the checkpoint's first line and the key's name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The verifier of the log key, when this instance holds the key.
    pub fn verifier(&self) -> Option<NoteVerifier> {
        self.signer.as_ref().map(NoteSigner::verifier)
    }

    /// The number of records in the tree.
    pub fn size(&self) -> u64 {
        self.read().size()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Tree> {
        // A panic while holding the lock leaves a tree that is only ever
        // appended whole hashes: still consistent, so use it.
        self.tree.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hashes every record the log has beyond the tree; returns the new size.
    pub async fn sync(&self) -> Result<u64, Error> {
        let mut head = self.sync.lock().await;
        loop {
            let from = self.size() + 1;
            if from > self.log.head().position {
                return Ok(from - 1);
            }
            let mut hashes: Vec<Hash> = Vec::new();
            let mut chain = ChainVerifier::resume(from, *head);
            self.log
                .read_all_with(from, PAGE, &mut |view| {
                    chain.check_view(view)?;
                    hashes.push(gridcase_trust::merkle::leaf_hash(&leaf_bytes(view)?));
                    Ok(())
                })
                .await?;
            if hashes.is_empty() {
                return Ok(from - 1);
            }
            let mut tree = self.tree.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            for h in hashes {
                tree.push_hash(h);
            }
            *head = chain.head_hash();
        }
    }

    /// The algorithms the store names in its metadata (checked at open).
    pub fn algorithms(&self) -> Algorithms {
        Algorithms::current()
    }

    /// The root of the tree of the first `size` records.
    pub fn root(&self, size: u64) -> Result<Hash, Error> {
        Ok(self.read().root(size)?)
    }

    /// A checkpoint of the tree as it is (unsigned).
    pub fn checkpoint(&self) -> Checkpoint {
        let tree = self.read();
        let size = tree.size();
        // The tree's own size is always within the tree.
        let root = tree.root(size).unwrap_or_default();
        Checkpoint { origin: self.origin.clone(), size, root }
    }

    /// Catches up, signs a checkpoint of the whole log, and saves it (and
    /// the tree) in the store. Refused without the log key.
    pub async fn sign_checkpoint(&self) -> Result<SignedCheckpoint, Error> {
        let signer = self.signer.as_ref().ok_or_else(|| {
            Error::InvalidInput(
                "this store has no log key: it serves proofs but cannot sign checkpoints (run `gridcase init`, or pass the key file)".into(),
            )
        })?;
        let _one = self.signing.lock().await;
        self.sync().await?;
        let checkpoint = self.checkpoint();
        let note = checkpoint.sign(signer)?;
        self.log
            .save_checkpoint(&checkpoint_name(checkpoint.size), note.clone().into_bytes())
            .await?;
        self.log.save_checkpoint(LATEST, note.clone().into_bytes()).await?;
        self.save_tree(checkpoint.size).await?;
        Ok(SignedCheckpoint { note, checkpoint })
    }

    async fn save_tree(&self, size: u64) -> Result<(), Error> {
        if size == 0 {
            return Ok(());
        }
        let head = self.log.read_all(size, 1).await?;
        let Some(rec) = head.first().filter(|r| r.position == size) else {
            return Ok(());
        };
        let mut bytes = Vec::with_capacity(TREE_MAGIC.len() + 44 + 32 * size as usize);
        bytes.extend_from_slice(TREE_MAGIC);
        bytes.extend_from_slice(&TREE_FORMAT.to_be_bytes());
        bytes.extend_from_slice(&size.to_be_bytes());
        bytes.extend_from_slice(&rec.hash);
        {
            let tree = self.read();
            for h in &tree.tile_level(0)[..size as usize] {
                bytes.extend_from_slice(h);
            }
        }
        let digest = blake3::hash(&bytes);
        bytes.extend_from_slice(digest.as_bytes());
        self.log.save_checkpoint(TREE_NAME, bytes).await?;
        Ok(())
    }

    /// For a store without a log key: the tree's checkpoint of `size`
    /// records (default: all it holds) as the unsigned body, in place of a
    /// signed note, so proofs can still be served (hashes only). A verifier
    /// must check them against a signed checkpoint it has from elsewhere;
    /// `gridcase audit check-proof` refuses the unsigned body.
    pub fn unsigned(&self, size: Option<u64>) -> Result<SignedCheckpoint, Error> {
        let size = size.unwrap_or_else(|| self.size());
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root: self.root(size)? };
        Ok(SignedCheckpoint { note: checkpoint.body(), checkpoint })
    }

    /// The latest signed checkpoint saved in the store, if any.
    pub async fn latest_signed(&self) -> Result<Option<SignedCheckpoint>, Error> {
        self.stored(LATEST).await
    }

    /// The signed checkpoint of exactly `size` records saved in the store, if any.
    pub async fn signed_at(&self, size: u64) -> Result<Option<SignedCheckpoint>, Error> {
        self.stored(&checkpoint_name(size)).await
    }

    async fn stored(&self, name: &str) -> Result<Option<SignedCheckpoint>, Error> {
        let Some(bytes) = self.log.load_checkpoint(name).await? else { return Ok(None) };
        let note = String::from_utf8(bytes)
            .map_err(|_| Error::Storage(format!("the stored {name} is not text")))?;
        let text = note
            .rsplit_once("\n\n")
            .map(|(t, _)| format!("{t}\n"))
            .ok_or_else(|| Error::Storage(format!("the stored {name} is not a signed note")))?;
        let checkpoint = Checkpoint::parse(&text)
            .map_err(|e| Error::Storage(format!("the stored {name}: {e}")))?;
        Ok(Some(SignedCheckpoint { note, checkpoint }))
    }

    /// The inclusion proof of the record at `position` in the tree of the
    /// first `size` records.
    pub fn inclusion_proof(&self, position: Position, size: u64) -> Result<Vec<Hash>, Error> {
        if position == 0 {
            return Err(Error::InvalidInput("positions start at 1".into()));
        }
        Ok(self.read().inclusion_proof(position - 1, size)?)
    }

    /// The consistency proof between the trees of `old` and `new` records.
    pub fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, Error> {
        Ok(self.read().consistency_proof(old, new)?)
    }

    /// An inclusion proof file for `positions` against a signed checkpoint.
    /// With `with_leaves`, each record's canonical bytes are included so a
    /// verifier hashes them itself (they carry case data); without, only
    /// their leaf hashes.
    pub async fn inclusion_file(
        &self,
        signed: &SignedCheckpoint,
        positions: &[Position],
        case: Option<String>,
        with_leaves: bool,
    ) -> Result<InclusionFile, Error> {
        let size = signed.checkpoint.size;
        let mut entries = Vec::with_capacity(positions.len());
        for &p in positions {
            if p == 0 || p > size {
                return Err(Error::InvalidInput(format!(
                    "position {p} is not in the checkpoint's tree of {size} records"
                )));
            }
            let recs = self.log.read_all(p, 1).await?;
            let rec = recs
                .first()
                .filter(|r| r.position == p)
                .ok_or_else(|| Error::NotFound(format!("no record at position {p}")))?;
            let leaf = leaf_bytes(&RecordView::of(rec))?.into_owned();
            let proof = self.inclusion_proof(p, size)?;
            let hash = gridcase_trust::merkle::leaf_hash(&leaf);
            entries.push(IncludedEntry {
                position: p,
                leaf_index: p - 1,
                leaf: with_leaves.then_some(B64Bytes(leaf)),
                leaf_hash: Some(B64Hash(hash)),
                inclusion_proof: proof.into_iter().map(B64Hash).collect(),
            });
        }
        Ok(InclusionFile {
            format: gridcase_trust::proof::FORMAT.into(),
            algorithms: Algorithms::current(),
            case,
            checkpoint: signed.note.clone(),
            entries,
        })
    }

    /// The positions of every record of `stream` within the first `size` records.
    pub async fn stream_positions(
        &self,
        stream: &StreamId,
        size: u64,
    ) -> Result<Vec<Position>, Error> {
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let page = self.log.read_stream(stream, from, PAGE).await?;
            let n = page.len();
            for r in &page {
                if r.position <= size {
                    out.push(r.position);
                }
                from = r.version + 1;
            }
            if n < PAGE {
                return Ok(out);
            }
        }
    }

    /// A consistency proof file between two signed checkpoints.
    pub fn consistency_file(
        &self,
        old: &SignedCheckpoint,
        new: &SignedCheckpoint,
    ) -> Result<ConsistencyFile, Error> {
        let proof = self.consistency_proof(old.checkpoint.size, new.checkpoint.size)?;
        Ok(ConsistencyFile {
            format: gridcase_trust::proof::FORMAT.into(),
            algorithms: Algorithms::current(),
            old_checkpoint: old.note.clone(),
            checkpoint: new.note.clone(),
            consistency_proof: proof.into_iter().map(B64Hash).collect(),
        })
    }

    /// A tlog-tiles resource other than the checkpoint, for the tree of
    /// `size` records (the latest signed checkpoint's): a hash tile, or an
    /// entry bundle of records' canonical bytes. `None` when that tree has
    /// no such resource (or not at that width).
    pub async fn tile(&self, resource: Resource, size: u64) -> Result<Option<Vec<u8>>, Error> {
        match resource {
            Resource::Checkpoint => Ok(None),
            Resource::Tile { level, index, width } => {
                if tiles::tile_width(size, level, index).is_none_or(|w| w < width) {
                    return Ok(None);
                }
                Ok(tiles::tile_bytes(&self.read(), level, index, width))
            }
            Resource::Entries { index, width } => {
                if tiles::tile_width(size, 0, index).is_none_or(|w| w < width) {
                    return Ok(None);
                }
                let first = index * gridcase_trust::merkle::TILE_WIDTH + 1;
                let mut leaves: Vec<Vec<u8>> = Vec::with_capacity(usize::from(width));
                self.log
                    .read_all_with(first, usize::from(width), &mut |view| {
                        leaves.push(leaf_bytes(view)?.into_owned());
                        Ok(())
                    })
                    .await?;
                if leaves.len() != usize::from(width) {
                    return Ok(None);
                }
                Ok(Some(tiles::encode_bundle(leaves.iter().map(Vec::as_slice))?))
            }
        }
    }
}

/// Names the store's algorithms in its metadata (`trust/algorithms`) on
/// first open, and refuses a store that names others: a store made under
/// another profile (e.g. SM3 / SM2 chosen at `init`) is never read, hashed
/// or signed with this one.
async fn check_profile(log: &dyn EventLog) -> Result<Algorithms, Error> {
    let current = Algorithms::current();
    match log.load_checkpoint(PROFILE_NAME).await? {
        Some(bytes) => {
            let stored: Algorithms = serde_json::from_slice(&bytes).map_err(|e| {
                Error::Storage(format!("the store's {PROFILE_NAME} does not parse: {e}"))
            })?;
            if stored != current {
                return Err(Error::InvalidInput(format!(
                    "the store uses {stored:?}; this build implements {current:?}"
                )));
            }
            Ok(stored)
        }
        None => {
            let json = serde_json::to_vec(&current)
                .map_err(|e| Error::Internal(format!("cannot write the algorithms: {e}")))?;
            log.save_checkpoint(PROFILE_NAME, json).await?;
            Ok(current)
        }
    }
}

/// The saved tree and the chain hash of its last record, if intact and if
/// the log's record at its end still has that hash; anything else means
/// rebuild.
async fn load_tree(log: &dyn EventLog) -> Option<(Tree, Hash)> {
    let bytes = log.load_checkpoint(TREE_NAME).await.ok()??;
    let (body, digest) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    if blake3::hash(body).as_bytes() != digest {
        return None;
    }
    let rest = body.strip_prefix(TREE_MAGIC)?;
    let (format, rest) = rest.split_at_checked(4)?;
    if u32::from_be_bytes(format.try_into().ok()?) != TREE_FORMAT {
        return None;
    }
    let (size, rest) = rest.split_at_checked(8)?;
    let size = u64::from_be_bytes(size.try_into().ok()?);
    let (hash, leaves) = rest.split_at_checked(32)?;
    if leaves.len() as u64 != size.checked_mul(32)? || size > log.head().position {
        return None;
    }
    let rec = log.read_all(size, 1).await.ok()?.into_iter().next()?;
    if rec.position != size || rec.hash.as_slice() != hash {
        return None;
    }
    let mut tree = Tree::new();
    for chunk in leaves.chunks_exact(32) {
        tree.push_hash(chunk.try_into().ok()?);
    }
    Some((tree, rec.hash))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::log::{
        AppendRequest, EventData, ExpectedVersion, SledLog, SledOptions, CODEC_POSTCARD,
    };
    use crate::time::{ManualClock, Timestamp};
    use gridcase_trust::merkle::{leaf_hash, verify_consistency, verify_inclusion};
    use gridcase_trust::proof::{check, ProofFile};

    fn open_log(dir: &std::path::Path) -> Arc<dyn EventLog> {
        Arc::new(
            SledLog::open(
                dir,
                SledOptions::default(),
                Arc::new(ManualClock::new(Timestamp(1_000))),
            )
            .unwrap(),
        )
    }

    async fn append(log: &dyn EventLog, stream: &str, n: usize) {
        let events = (0..n)
            .map(|i| EventData {
                event_type: "T".into(),
                schema_version: 1,
                payload_codec: CODEC_POSTCARD,
                payload: vec![i as u8; 40],
            })
            .collect();
        let req = AppendRequest::new(
            StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            "tester",
            events,
        );
        log.append(req).await.unwrap();
    }

    #[tokio::test]
    async fn follows_the_log_signs_and_reopens_from_its_saved_tree() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path());
        append(log.as_ref(), "case-A", 300).await;
        append(log.as_ref(), "case-B", 5).await;
        let signer = NoteSigner::generate("test.example/log").unwrap();
        let skey = signer.to_skey();
        let t =
            Transparency::open(log.clone(), "test.example/log".into(), Some(signer)).await.unwrap();
        assert_eq!(t.size(), 305);

        // The leaves are the records' canonical bytes as stored.
        let recs = log.read_all(1, 305).await.unwrap();
        let mut naive = Tree::new();
        for r in &recs {
            naive.push(&leaf_bytes(&RecordView::of(r)).unwrap());
        }
        assert_eq!(t.root(305).unwrap(), naive.root(305).unwrap());

        let signed = t.sign_checkpoint().await.unwrap();
        assert_eq!(signed.checkpoint.size, 305);
        let verifier = t.verifier().unwrap();
        assert_eq!(Checkpoint::open(&signed.note, &verifier).unwrap(), signed.checkpoint);

        // A receipt of case-B's events checks offline.
        let positions = t.stream_positions(&StreamId::new("case-B").unwrap(), 305).await.unwrap();
        assert_eq!(positions, vec![301, 302, 303, 304, 305]);
        let file = t.inclusion_file(&signed, &positions, Some("B".into()), true).await.unwrap();
        let ok = check(&ProofFile::Receipt(file), &verifier, None).unwrap();
        assert_eq!(ok.positions, positions);

        // Appends after the checkpoint: the tree follows, the old
        // checkpoint stays consistent with the new one.
        append(log.as_ref(), "case-C", 3).await;
        assert_eq!(t.sync().await.unwrap(), 308);
        let newer = t.sign_checkpoint().await.unwrap();
        let cf = t.consistency_file(&signed, &newer).unwrap();
        check(&ProofFile::Consistency(cf), &verifier, None).unwrap();
        assert_eq!(t.signed_at(305).await.unwrap().unwrap(), signed);
        assert_eq!(t.latest_signed().await.unwrap().unwrap(), newer);

        // Tiles hash up to the checkpoint's root; a bundle holds the leaves.
        let tile0 =
            t.tile(Resource::Tile { level: 0, index: 0, width: 256 }, 308).await.unwrap().unwrap();
        let tile1 =
            t.tile(Resource::Tile { level: 0, index: 1, width: 52 }, 308).await.unwrap().unwrap();
        let mut from_tiles = Tree::new();
        for h in tile0.chunks(32).chain(tile1.chunks(32)) {
            from_tiles.push_hash(h.try_into().unwrap());
        }
        assert_eq!(from_tiles.root(308).unwrap(), newer.checkpoint.root);
        assert!(t
            .tile(Resource::Tile { level: 0, index: 1, width: 53 }, 308)
            .await
            .unwrap()
            .is_none());
        let bundle = t.tile(Resource::Entries { index: 1, width: 52 }, 308).await.unwrap().unwrap();
        let entries = tiles::decode_bundle(&bundle).unwrap();
        assert_eq!(leaf_hash(entries[0]), t.read().leaf(256).unwrap());

        // Proof helpers agree with the verifiers.
        let p = t.inclusion_proof(7, 308).unwrap();
        verify_inclusion(6, 308, &t.read().leaf(6).unwrap(), &p, &newer.checkpoint.root).unwrap();
        let c = t.consistency_proof(305, 308).unwrap();
        verify_consistency(305, 308, &c, &signed.checkpoint.root, &newer.checkpoint.root).unwrap();
        drop(t);
        drop(log);

        // Reopen: the saved tree is used (it matches the log) and caught up.
        let log = open_log(dir.path());
        let (saved, head) = load_tree(log.as_ref()).await.unwrap();
        assert_eq!(saved.size(), 308);
        assert_eq!(head, log.head().hash);
        let t = Transparency::open(
            log.clone(),
            "test.example/log".into(),
            Some(NoteSigner::parse(&skey).unwrap()),
        )
        .await
        .unwrap();
        assert_eq!(t.root(308).unwrap(), newer.checkpoint.root);
    }

    #[tokio::test]
    async fn the_store_names_its_algorithms_and_refuses_another_profile() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path());
        Transparency::open(log.clone(), "o".into(), None).await.unwrap();
        let stored = log.load_checkpoint(PROFILE_NAME).await.unwrap().unwrap();
        let named: Algorithms = serde_json::from_slice(&stored).unwrap();
        assert_eq!(named, Algorithms::current());
        let sm = Algorithms {
            merkle_hash: "sm3".into(),
            signature: "sm2".into(),
            ..Algorithms::current()
        };
        log.save_checkpoint(PROFILE_NAME, serde_json::to_vec(&sm).unwrap()).await.unwrap();
        assert!(matches!(
            Transparency::open(log, "o".into(), None).await,
            Err(Error::InvalidInput(m)) if m.contains("sm3")
        ));
    }

    #[tokio::test]
    async fn without_a_key_it_proves_but_does_not_sign() {
        let dir = tempfile::tempdir().unwrap();
        let log = open_log(dir.path());
        append(log.as_ref(), "s", 3).await;
        let t = Transparency::open(log, "o".into(), None).await.unwrap();
        assert!(matches!(t.sign_checkpoint().await, Err(Error::InvalidInput(_))));
        assert_eq!(t.inclusion_proof(1, 3).unwrap().len(), 2);
        assert!(t.inclusion_proof(0, 3).is_err());
        assert!(t.inclusion_proof(4, 3).is_err());
        // Proof files against the unsigned body: made, but not accepted as signed.
        let body = t.unsigned(None).unwrap();
        assert_eq!(body.checkpoint.size, 3);
        let file = t.inclusion_file(&body, &[2], None, false).await.unwrap();
        let other = NoteSigner::generate("o").unwrap().verifier();
        assert!(matches!(
            check(&ProofFile::Inclusion(file), &other, None),
            Err(TrustError::Malformed(m)) if m.contains("not signed")
        ));
        assert!(t.unsigned(Some(4)).is_err());
        let wrong = NoteSigner::generate("p").unwrap();
        let log = open_log(tempfile::tempdir().unwrap().path());
        assert!(Transparency::open(log, "o".into(), Some(wrong)).await.is_err());
    }
}
