//! API keys: created once, shown once, stored only as a hash.
//!
//! A key is `gck_` followed by 48 hex digits (192 random bits). The key file
//! (`<data>/api_keys.toml` by default) holds, per key, a BLAKE3 derived
//! hash of the key, a short id for listing and revoking, and the actor the
//! key acts as: a staff id from the registry (whose role and unit come from
//! the registry at request time, so a retired staff member's key stops
//! working at once) or `resident:<id>`. Nobody can recover a key from the
//! file; a lost key is revoked and a new one created.
//!
//! Because the stored value is a hash of a high-entropy secret, a plain
//! hash (no salt, no slow KDF) is enough: there is nothing to guess.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// The BLAKE3 key-derivation context of stored key hashes.
const HASH_CONTEXT: &str = "gridcase api key 2026-03 v1";
/// Prefix of every key, so that leaked keys are easy to recognise in logs and scanners.
pub const KEY_PREFIX: &str = "gck_";

/// One stored key (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Short id for listing and revoking (not secret).
    pub id: String,
    /// Hex of the BLAKE3 derived hash of the key.
    pub hash: String,
    /// The actor the key acts as: a staff id, or `resident:<id>`.
    pub actor: String,
    /// A note for people (which portal or app uses it).
    #[serde(default)]
    pub label: String,
    /// When it was created (RFC 3339).
    #[serde(default)]
    pub created_at: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<KeyEntry>,
}

/// The set of keys a server accepts.
///
/// A store loaded from a file notices when the file changes (checked at
/// most once a second, on lookups), so keys created or revoked with the CLI
/// take effect in a running server without a restart.
#[derive(Debug, Default)]
pub struct KeyStore {
    path: Option<PathBuf>,
    by_hash: RwLock<HashMap<String, KeyEntry>>,
    /// When the file was last checked, and its modification time then.
    checked: Mutex<Option<(Instant, Option<SystemTime>)>>,
}

/// How often a lookup may look at the key file's modification time.
const RECHECK: Duration = Duration::from_secs(1);

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The stored hash of a key.
pub fn hash_key(key: &str) -> String {
    let h = blake3::derive_key(HASH_CONTEXT, key.as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> ApiError {
    move |source| ApiError::Io { what, source }
}

impl KeyStore {
    /// A store that lives in memory only (tests, embedding).
    pub fn in_memory() -> KeyStore {
        KeyStore::default()
    }

    /// Loads the key file at `path`; a missing file is an empty store that
    /// [`KeyStore::create`] will write.
    pub fn load(path: impl AsRef<Path>) -> Result<KeyStore, ApiError> {
        let path = path.as_ref().to_path_buf();
        let stamp = modified(&path);
        let by_hash = Self::read(&path)?;
        Ok(KeyStore {
            path: Some(path),
            by_hash: RwLock::new(by_hash),
            checked: Mutex::new(Some((Instant::now(), stamp))),
        })
    }

    fn read(path: &Path) -> Result<HashMap<String, KeyEntry>, ApiError> {
        let file = match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str::<KeyFile>(&text).map_err(|e| {
                ApiError::Setup(format!("key file {} does not parse: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::default(),
            Err(e) => return Err(io(format!("cannot read key file {}", path.display()))(e)),
        };
        let mut by_hash = HashMap::new();
        for k in file.keys {
            if k.hash.len() != 64 || !k.hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::Setup(format!(
                    "key file {}: key {:?} has a malformed hash",
                    path.display(),
                    k.id
                )));
            }
            by_hash.insert(k.hash.to_ascii_lowercase(), k);
        }
        Ok(by_hash)
    }

    /// Reloads the file if it changed since the last check (at most once a
    /// second). A file that no longer parses keeps the keys in force and is
    /// logged: a half-edited file must not lock everybody out.
    fn refresh(&self) {
        let Some(path) = &self.path else { return };
        // try_lock: a lookup never waits for another lookup's check.
        let Ok(mut checked) = self.checked.try_lock() else { return };
        if let Some((at, _)) = *checked {
            if at.elapsed() < RECHECK {
                return;
            }
        }
        let stamp = modified(path);
        let changed = checked.map(|(_, old)| old != stamp).unwrap_or(true);
        *checked = Some((Instant::now(), stamp));
        if !changed {
            return;
        }
        match Self::read(path) {
            Ok(map) => {
                *self.by_hash.write().unwrap_or_else(|p| p.into_inner()) = map;
                tracing::info!(file = %path.display(), "API key file reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "API key file changed but cannot be used; keeping the keys in force")
            }
        }
    }

    /// The file the store writes to, if any.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The entry of a presented key, if the key is known.
    pub fn lookup(&self, key: &str) -> Option<KeyEntry> {
        if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
            return None;
        }
        self.refresh();
        let h = hash_key(key);
        self.by_hash.read().unwrap_or_else(|p| p.into_inner()).get(&h).cloned()
    }

    /// The entry whose stored hash is `hash` (a dashboard session keeps
    /// the hash of the key it was opened with, never the key), if that key
    /// is still in force: a revoked key ends its sessions too.
    pub fn lookup_hash(&self, hash: &str) -> Option<KeyEntry> {
        self.refresh();
        self.by_hash.read().unwrap_or_else(|p| p.into_inner()).get(hash).cloned()
    }

    /// Every entry, by id.
    pub fn list(&self) -> Vec<KeyEntry> {
        let mut v: Vec<KeyEntry> =
            self.by_hash.read().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    /// Creates a key for `actor` and saves the file. Returns the key (the
    /// only time it exists outside the caller) and its entry. The caller
    /// checks that the actor exists.
    pub fn create(
        &self,
        actor: &str,
        label: &str,
        created_at: &str,
    ) -> Result<(String, KeyEntry), ApiError> {
        let mut secret = [0u8; 24];
        rand::rng().fill_bytes(&mut secret);
        let key = format!(
            "{KEY_PREFIX}{}",
            secret.iter().map(|b| format!("{b:02x}")).collect::<String>()
        );
        let hash = hash_key(&key);
        let entry = KeyEntry {
            id: format!("k{}", &hash[..12]),
            hash: hash.clone(),
            actor: actor.to_string(),
            label: label.to_string(),
            created_at: created_at.to_string(),
        };
        {
            let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            map.insert(hash, entry.clone());
        }
        self.save()?;
        self.mark_saved();
        Ok((key, entry))
    }

    /// Removes the key with this id; returns whether there was one.
    pub fn revoke(&self, id: &str) -> Result<bool, ApiError> {
        let removed = {
            let mut map = self.by_hash.write().unwrap_or_else(|p| p.into_inner());
            let before = map.len();
            map.retain(|_, e| e.id != id);
            map.len() != before
        };
        if removed {
            self.save()?;
            self.mark_saved();
        }
        Ok(removed)
    }

    /// Our own write is not a change to reload.
    fn mark_saved(&self) {
        if let Some(path) = &self.path {
            *self.checked.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((Instant::now(), modified(path)));
        }
    }

    /// Writes the file atomically (temporary file, fsync, rename), readable
    /// by the owner only.
    fn save(&self) -> Result<(), ApiError> {
        let Some(path) = &self.path else { return Ok(()) };
        let file = KeyFile { keys: self.list() };
        let mut text = String::from(
            "# gridcase API keys: hashes only. Create with `gridcase apikey create --as STAFF_ID`.\n",
        );
        text.push_str(
            &toml::to_string(&file)
                .map_err(|e| ApiError::Internal(format!("cannot encode the key file: {e}")))?,
        );
        let tmp = path.with_extension("toml.tmp");
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io(format!("cannot write {}", tmp.display())))?;
            f.write_all(text.as_bytes()).map_err(io(format!("cannot write {}", tmp.display())))?;
            f.sync_all().map_err(io(format!("cannot fsync {}", tmp.display())))?;
        }
        std::fs::rename(&tmp, path).map_err(io(format!("cannot replace {}", path.display())))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn keys_round_trip_through_the_file_as_hashes_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api_keys.toml");
        let store = KeyStore::load(&path).unwrap();
        let (key, entry) = store.create("cs11", "portal", "2026-03-02T08:00:00Z").unwrap();
        assert!(key.starts_with(KEY_PREFIX));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&key), "the key itself must never be stored");
        let again = KeyStore::load(&path).unwrap();
        assert_eq!(again.lookup(&key).unwrap().actor, "cs11");
        assert!(again.lookup("gck_000").is_none());
        assert!(again.revoke(&entry.id).unwrap());
        assert!(KeyStore::load(&path).unwrap().lookup(&key).is_none());
    }
}
