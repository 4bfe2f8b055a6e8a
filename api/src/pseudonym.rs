//! Residents' ids in shared views: the one place a resident id is turned
//! into what another caller may see.
//!
//! A resident id is whatever the portal sends after `resident:`, often a
//! phone number. Callers who may not read the case's personal data see a
//! stable pseudonym instead: `resident:~` and the first 16 hex digits of a
//! BLAKE3 keyed hash of the id. The key is not in the log (the log is
//! published as tlog-tiles); it is a random 32-byte file beside the API
//! keys (`<data>/pseudonym.key`), created on first use, so the same
//! resident gets the same pseudonym across requests and restarts, and
//! nobody without the key can test a guessed phone number against it.

use std::path::Path;

use crate::ApiError;

/// The file name of the pseudonym key in the data directory.
pub const KEY_FILE: &str = "pseudonym.key";

/// The keyed pseudonymiser of resident ids.
#[derive(Clone)]
pub struct Pseudonyms {
    key: [u8; 32],
}

impl std::fmt::Debug for Pseudonyms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.write_str("Pseudonyms(..)")
    }
}

impl Pseudonyms {
    /// A pseudonymiser with a fresh random key, for a server without a
    /// data directory (tests, embedded use): stable for the process only.
    pub fn ephemeral() -> Result<Pseudonyms, ApiError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| ApiError::Setup(format!("no randomness for the pseudonym key: {e}")))?;
        Ok(Pseudonyms { key })
    }

    /// Loads `dir/pseudonym.key`, creating it (mode 0600 on Unix) on first use.
    pub fn load_or_create(dir: &Path) -> Result<Pseudonyms, ApiError> {
        let path = dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                    ApiError::Setup(format!(
                        "{} is not a pseudonym key (32 bytes); restore it from a backup, or delete it to start new pseudonyms",
                        path.display()
                    ))
                })?;
                Ok(Pseudonyms { key })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let p = Self::ephemeral()?;
                write_private(&path, &p.key).map_err(|source| ApiError::Io {
                    what: format!("cannot write the pseudonym key {}", path.display()),
                    source,
                })?;
                Ok(p)
            }
            Err(source) => Err(ApiError::Io {
                what: format!("cannot read the pseudonym key {}", path.display()),
                source,
            }),
        }
    }

    /// What a caller sees of `actor`: the id itself when `may_see_real` or
    /// when it is not a resident's; a resident's pseudonym otherwise.
    pub fn shown(&self, actor: &str, may_see_real: bool) -> String {
        match actor.strip_prefix("resident:") {
            Some(id) if !may_see_real => {
                let h = blake3::keyed_hash(&self.key, id.as_bytes());
                format!("resident:~{}", &h.to_hex()[..16])
            }
            _ => actor.to_string(),
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn residents_get_a_stable_keyed_pseudonym_staff_ids_pass() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let a = Pseudonyms::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let b = Pseudonyms::load_or_create(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let shown = a.shown("resident:13800138000", false);
        assert!(shown.starts_with("resident:~") && !shown.contains("138001"));
        assert_eq!(shown, b.shown("resident:13800138000", false), "the key is reused");
        assert_ne!(shown, a.shown("resident:13800138001", false));
        assert_eq!(a.shown("resident:13800138000", true), "resident:13800138000");
        assert_eq!(a.shown("cs11", false), "cs11");
        let other = Pseudonyms::ephemeral().unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(shown, other.shown("resident:13800138000", false), "keyed");
    }
}
