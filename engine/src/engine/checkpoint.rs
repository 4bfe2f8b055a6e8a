//! The engine checkpoint: the open-case view saved in the store with the
//! position and hash it was taken at, so a restart reads only the log after
//! it. It is derived state: used only when intact and when the log's record
//! at its position has its hash; otherwise the log is followed from the start.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::follow::Follow;
use super::Engine;
use crate::domain::Case;
use crate::log::{Hash, Position, GENESIS_HASH};
use crate::Error;

/// What an engine checkpoint holds: the open cases as folded up to `position`
/// (some may be newer: catch-up skips what a case already holds).
#[derive(Serialize, Deserialize)]
struct CheckpointBody {
    position: Position,
    hash: Hash,
    cases: Vec<Arc<Case>>,
}

/// The store's name for the engine's checkpoint.
const CHECKPOINT_NAME: &str = "engine/open-cases";
const CHECKPOINT_MAGIC: &[u8] = b"gridcase-engine-checkpoint\0";
/// Bump when `Case` or its fold changes: an old checkpoint is then ignored
/// and the log is followed from the start.
///
/// 3: `Case` keeps the reported point, how it was placed, media and
/// reporter details, and an automatic hop takes effect at its deadline
/// (`Case::effective_at`), which changes holders' `since`.
const CHECKPOINT_FORMAT: u32 = 3;

impl Engine {
    /// Saves the open-case view, complete up to the position returned, as a
    /// checkpoint in the store, so that the next start reads only the log
    /// after it. Run it at shutdown and now and then (`serve` does both).
    pub async fn save_checkpoint(&self) -> Result<Position, Error> {
        let mut follow = self.follow.lock().await;
        self.catch_up_locked(&mut follow).await?;
        let position = follow.position;
        let hash = match position {
            0 => GENESIS_HASH,
            p => {
                self.log
                    .read_all(p, 1)
                    .await?
                    .first()
                    .ok_or_else(|| Error::Internal("the followed position is past the log".into()))?
                    .hash
            }
        };
        let mut cases: Vec<Arc<Case>> = {
            let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
            open.cases.values().cloned().collect()
        };
        drop(follow);
        cases.sort_by(|a, b| a.id.cmp(&b.id));
        let body = postcard::to_allocvec(&CheckpointBody { position, hash, cases })
            .map_err(|e| Error::Codec(format!("engine checkpoint: {e}")))?;
        let mut bytes = Vec::with_capacity(body.len() + 40);
        bytes.extend_from_slice(CHECKPOINT_MAGIC);
        bytes.extend_from_slice(&CHECKPOINT_FORMAT.to_be_bytes());
        bytes.extend_from_slice(blake3::hash(&body).as_bytes());
        bytes.extend_from_slice(&body);
        self.log.save_checkpoint(CHECKPOINT_NAME, bytes).await?;
        Ok(position)
    }

    /// Takes the open-case view from the store's checkpoint if it is intact,
    /// of this build's format, and its position and hash are the log's.
    /// Returns why not otherwise; the caller then follows the whole log.
    pub(super) async fn restore_checkpoint(&self, follow: &mut Follow) -> Result<Position, String> {
        let bytes = match self.log.load_checkpoint(CHECKPOINT_NAME).await {
            Ok(Some(b)) => b,
            Ok(None) => return Err("none saved".into()),
            Err(e) => return Err(e.to_string()),
        };
        let header = CHECKPOINT_MAGIC.len() + 4 + 32;
        if bytes.len() < header || &bytes[..CHECKPOINT_MAGIC.len()] != CHECKPOINT_MAGIC {
            return Err("not an engine checkpoint".into());
        }
        let format = &bytes[CHECKPOINT_MAGIC.len()..CHECKPOINT_MAGIC.len() + 4];
        if format != CHECKPOINT_FORMAT.to_be_bytes() {
            return Err("written by a build with another case fold".into());
        }
        let (digest, body) = bytes[CHECKPOINT_MAGIC.len() + 4..].split_at(32);
        if blake3::hash(body).as_bytes() != digest {
            return Err("its digest does not match (torn or altered)".into());
        }
        let cp: CheckpointBody =
            postcard::from_bytes(body).map_err(|e| format!("does not decode: {e}"))?;
        if cp.position > self.log.head().position {
            return Err(format!("it is at position {}, past the log's head", cp.position));
        }
        if cp.position > 0 {
            let rec = self.log.read_all(cp.position, 1).await.map_err(|e| e.to_string())?;
            if rec.first().map(|r| r.hash) != Some(cp.hash) {
                return Err(format!(
                    "the log's record {} is not the one it was taken at",
                    cp.position
                ));
            }
        }
        if cp.position <= follow.position {
            return Err("the engine has already followed the log past it".into());
        }
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // Cases this engine changed before the restore are newer than the
        // checkpoint's copies, and `put` keeps the newer.
        for case in cp.cases {
            open.put(case);
        }
        follow.position = cp.position;
        Ok(cp.position)
    }

    /// The position of the checkpoint the open-case view was restored from,
    /// if one was used (known after the first [`Engine::catch_up`]).
    pub async fn restored_from_checkpoint(&self) -> Option<Position> {
        self.follow.lock().await.restored_from
    }
}
