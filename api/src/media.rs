//! The media store: photos attached to submissions, outside the log.
//!
//! A file is stored once under its SHA-256, `<data>/media/<first two hex
//! digits>/<64 hex digits>`, and the submission's event keeps only a
//! [`MediaRef`] (hash, type, size): the log stays small and the hash
//! proves the file. A write goes to a temporary file in the same
//! directory, is synced, renamed into place and the directory synced, so a
//! crash leaves either the whole file or none under its name; the same
//! bytes uploaded twice are one file.
//!
//! What is accepted is decided from the bytes, never from the client's
//! `Content-Type` or file name: JPEG, PNG, WebP and HEIC/HEIF images
//! ([`sniff`]), at most [`MediaStore::max_bytes`]. Open311 serves a stored
//! file at `GET /open311/v2/media/{sha256}`, the URL its `media_url` gives.

use std::io::Write;
use std::path::{Path, PathBuf};

use gridcase_engine::domain::MediaRef;
use sha2::{Digest, Sha256};

use crate::ApiError;

/// Default largest file: 5 MiB (a phone photo, recompressed by most apps).
pub const DEFAULT_MAX_BYTES: usize = 5 * 1024 * 1024;

/// The content type of an accepted image, from its first bytes; `None`
/// for anything else (the upload is refused).
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some("image/jpeg");
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        return Some("image/webp");
    }
    // ISO base media: a box `ftyp` at offset 4 whose major brand names HEIF.
    if bytes.len() >= 12 && &bytes[4..8] == b"ftyp" {
        return match &bytes[8..12] {
            b"heic" | b"heix" | b"heim" | b"heis" => Some("image/heic"),
            b"mif1" | b"msf1" | b"hevc" | b"hevx" => Some("image/heif"),
            _ => None,
        };
    }
    None
}

/// Hex of a SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `s` is 64 lower-case hex digits (the only names the store has,
/// so a path built from it cannot leave the store's directory).
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Content-addressed files under one directory.
#[derive(Clone, Debug)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: usize,
}

impl MediaStore {
    /// A store in `dir` (created on the first write) taking files of at
    /// most `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: usize) -> MediaStore {
        MediaStore { dir: dir.into(), max_bytes }
    }

    /// The largest file accepted, in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    fn path_of(&self, sha: &str) -> PathBuf {
        self.dir.join(&sha[..2]).join(sha)
    }

    /// Checks and stores `bytes`; returns the reference the event keeps.
    /// Refused (400): empty, too large, or not an accepted image.
    pub fn put(&self, bytes: &[u8]) -> Result<MediaRef, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::bad_request("invalid_media", "the media file is empty"));
        }
        if bytes.len() > self.max_bytes {
            return Err(ApiError::bad_request(
                "media_too_large",
                format!("the media file is larger than {} bytes", self.max_bytes),
            ));
        }
        let content_type = sniff(bytes).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_media",
                "media must be a JPEG, PNG, WebP or HEIC image (decided from its bytes)",
            )
        })?;
        let sha = sha256_hex(bytes);
        let path = self.path_of(&sha);
        if !path.exists() {
            write_atomically(&path, bytes)?;
        }
        Ok(MediaRef {
            sha256: sha,
            content_type: content_type.into(),
            size: bytes.len() as u64,
            url: None,
        })
    }

    /// The stored file with this hash and its content type, if there is one.
    pub fn get(&self, sha: &str) -> Result<Option<(Vec<u8>, &'static str)>, ApiError> {
        if !is_sha256(sha) {
            return Ok(None);
        }
        let path = self.path_of(sha);
        match std::fs::read(&path) {
            Ok(bytes) => {
                // Only what `put` accepted is ever stored; a file changed on
                // disk since is not served as something it is not.
                if sha256_hex(&bytes) != sha {
                    return Err(ApiError::Internal(format!(
                        "media file {} does not match its hash",
                        path.display()
                    )));
                }
                Ok(sniff(&bytes).map(|ct| (bytes, ct)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => {
                Err(ApiError::Io { what: format!("cannot read {}", path.display()), source })
            }
        }
    }
}

/// Writes `bytes` to `path` so that a crash leaves all of it or nothing
/// there: a synced temporary file renamed into place, then the directory
/// synced so that the rename lasts.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ApiError> {
    let io = |what: &str, p: &Path| {
        let what = format!("cannot {what} {}", p.display());
        move |source| ApiError::Io { what, source }
    };
    let dir = path
        .parent()
        .ok_or_else(|| ApiError::Internal("a media path without a directory".into()))?;
    std::fs::create_dir_all(dir).map_err(io("create", dir))?;
    // A unique temporary name: two uploads of the same file at once each
    // write their own and the second rename replaces identical bytes.
    let mut suffix = [0u8; 8];
    rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut suffix)
        .map_err(|e| ApiError::Internal(format!("the OS random source failed: {e}")))?;
    let tmp =
        dir.join(format!(".tmp-{}", suffix.iter().map(|b| format!("{b:02x}")).collect::<String>()));
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).map_err(io("write", &tmp))?;
        f.sync_all().map_err(io("fsync", &tmp))?;
        std::fs::rename(&tmp, path).map_err(io("rename into place", path))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io("fsync", dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR rest of a tiny png";

    #[test]
    fn types_are_decided_from_the_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0 jfif"), Some("image/jpeg"));
        assert_eq!(sniff(PNG), Some("image/png"));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some("image/webp"));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some("image/heic"));
        assert_eq!(sniff(b"\0\0\0\x18ftypmp42\0\0\0\0"), None, "an MP4 video");
        assert_eq!(sniff(b"<svg onload=alert(1)>"), None);
        assert_eq!(sniff(b"GIF89a"), None);
        assert_eq!(sniff(b""), None);
    }

    #[test]
    fn a_file_is_stored_once_under_its_hash_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path().join("media"), 1024);
        let a = store.put(PNG).unwrap();
        assert_eq!(a.content_type, "image/png");
        assert_eq!(a.size, PNG.len() as u64);
        assert!(is_sha256(&a.sha256));
        let path = dir.path().join("media").join(&a.sha256[..2]).join(&a.sha256);
        assert_eq!(std::fs::read(&path).unwrap(), PNG);
        assert_eq!(store.put(PNG).unwrap(), a, "the same bytes, the same reference");
        let files = std::fs::read_dir(path.parent().unwrap()).unwrap().count();
        assert_eq!(files, 1, "no temporary file left behind");
        assert_eq!(store.get(&a.sha256).unwrap(), Some((PNG.to_vec(), "image/png")));
        assert_eq!(store.get(&"0".repeat(64)).unwrap(), None);
        assert_eq!(store.get("../../etc/passwd").unwrap(), None);
    }

    #[test]
    fn too_large_empty_and_unknown_files_are_refused_and_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = MediaStore::new(dir.path().join("media"), 16);
        for bytes in [PNG, b"".as_slice(), b"plain text".as_slice()] {
            assert_eq!(store.put(bytes).unwrap_err().status().as_u16(), 400);
        }
        assert!(!dir.path().join("media").exists());
    }
}
