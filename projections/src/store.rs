//! Saving a [`ProjectionSet`] with its checkpoint, so a restart resumes
//! from where it stopped instead of rebuilding from position 1.
//!
//! File `projections.state` in the state directory:
//! `b"GCPJ" ++ [format] ++ postcard(ProjectionSet) ++ BLAKE3(all before)`.
//!
//! The write path, in order:
//! 1. encode the set and its checksum into memory;
//! 2. write `projections.state.tmp`, then `fsync` it;
//! 3. rename it over `projections.state` (atomic on POSIX file systems);
//! 4. `fsync` the directory so the rename itself survives a crash.
//!
//! A crash at any step leaves either the old file or the new one, never a
//! mix; a torn or altered file fails its checksum and is reported as
//! [`Error::Damaged`], after which the caller rebuilds.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::set::{Config, ProjectionSet};
use crate::Error;

const MAGIC: &[u8; 4] = b"GCPJ";
/// Version of the state file layout written by this build. A file of an
/// older format is not read (its bytes would decode as something else) but
/// reported as [`Error::OlderFormat`], after which `open` rebuilds.
///
/// 2: one per-case fold in the set (`live` cases and retention), the
/// projections' per-case records reduced to what `Case` lacks, and the
/// case listing.
/// 3: the registry carries the district's time zone.
/// 4: also, the listing keeps the reported point and the first media hash
/// (Open311 `lat`/`long`, `media_url`); a branch numbered that change 3 as
/// well, so 4 keeps a state file of either 3 from being misread.
/// 4: the registry carries the micro-grids' boundaries and the bounding
/// box; the case listing keeps each case's reported point and how its
/// location was resolved.
/// 5: both of the above (the listing's point, media and placement, and the
/// registry's geography), merged.
/// 6: an automatic hop takes effect at its deadline (holders' `since`,
/// chain hold times), media may be links, the case listing's media slot
/// holds either a hash or a link.
pub const STATE_FORMAT: u8 = 6;
const FILE: &str = "projections.state";
const TMP: &str = "projections.state.tmp";

/// A directory holding saved projection state.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_path_buf(), source }
}

impl Store {
    /// Uses `dir` (created if missing).
    pub fn open(dir: impl AsRef<Path>) -> Result<Store, Error> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        Ok(Store { dir })
    }

    /// The state file's path.
    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Saves the set atomically (see the module docs); returns the bytes written.
    pub fn save(&self, set: &ProjectionSet) -> Result<u64, Error> {
        let body = set.to_bytes()?;
        self.save_bytes(&body)
    }

    /// Saves an already encoded set ([`ProjectionSet::to_bytes`]), so that a
    /// live follower can encode under its lock and write outside it.
    pub fn save_bytes(&self, body: &[u8]) -> Result<u64, Error> {
        let mut bytes = Vec::with_capacity(body.len() + 37);
        bytes.extend_from_slice(MAGIC);
        bytes.push(STATE_FORMAT);
        bytes.extend_from_slice(body);
        let check = *blake3::hash(&bytes).as_bytes();
        bytes.extend_from_slice(&check);
        let tmp = self.dir.join(TMP);
        let path = self.path();
        {
            let mut f = fs::File::create(&tmp).map_err(io("create", &tmp))?;
            f.write_all(&bytes).map_err(io("write", &tmp))?;
            f.sync_all().map_err(io("fsync", &tmp))?;
        }
        fs::rename(&tmp, &path).map_err(io("rename into place", &path))?;
        let dir = fs::File::open(&self.dir).map_err(io("open", &self.dir))?;
        dir.sync_all().map_err(io("fsync", &self.dir))?;
        Ok(bytes.len() as u64)
    }

    /// Loads the saved set, if there is one, checking its checksum, format
    /// and configuration.
    pub fn load(&self, config: Config) -> Result<Option<ProjectionSet>, Error> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { action: "read", path, source: e }),
        };
        let damaged =
            |reason: &str| Error::Damaged { path: path.clone(), reason: reason.to_string() };
        if bytes.len() < MAGIC.len() + 1 + 32 || &bytes[..4] != MAGIC {
            return Err(damaged("not a projection state file"));
        }
        let format = bytes[4];
        if format > STATE_FORMAT {
            return Err(Error::NewerFormat { found: format, supported: STATE_FORMAT });
        }
        let (content, check) = bytes.split_at(bytes.len() - 32);
        if blake3::hash(content).as_bytes() != check {
            return Err(damaged("checksum mismatch: the file is torn or was altered"));
        }
        if format < STATE_FORMAT {
            return Err(Error::OlderFormat { found: format, current: STATE_FORMAT });
        }
        let set = ProjectionSet::from_bytes(&content[5..])
            .map_err(|e| damaged(&format!("does not decode: {e}")))?;
        if set.config() != config {
            return Err(Error::ConfigMismatch {
                saved: set.config().to_string(),
                wanted: config.to_string(),
            });
        }
        Ok(Some(set))
    }

    /// Deletes the saved state (the next start rebuilds).
    pub fn clear(&self) -> Result<(), Error> {
        let path = self.path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io { action: "delete", path, source: e }),
        }
    }
}
