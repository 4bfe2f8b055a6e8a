//! The C2SP tlog-checkpoint body: `origin\nsize\nbase64(root)\n`.
//!
//! Signed as a [`crate::note`], it is the log's statement "the tree of my
//! first `size` entries has this root". It says nothing about entries
//! appended after it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use crate::note::{NoteSigner, NoteVerifier};
use crate::{Hash, TrustError};

/// A checkpoint's content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin: a schema-less URL-like name, also the key's name.
    pub origin: String,
    /// The number of entries the tree covers.
    pub size: u64,
    /// The tree's root hash.
    pub root: Hash,
}

impl Checkpoint {
    /// The note text: three lines, each ending in a newline, no extensions.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.size, B64.encode(self.root))
    }

    /// Parses note text; extension lines after the root are allowed and ignored.
    pub fn parse(text: &str) -> Result<Checkpoint, TrustError> {
        let bad = |why: &str| TrustError::Malformed(format!("checkpoint: {why}"));
        let body = text.strip_suffix('\n').ok_or_else(|| bad("must end with a newline"))?;
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty()).ok_or_else(|| bad("no origin line"))?;
        let size = lines.next().ok_or_else(|| bad("no size line"))?;
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(bad("the size is not a decimal number without leading zeros"));
        }
        let size: u64 = size.parse().map_err(|_| bad("the size does not fit 64 bits"))?;
        let root = lines.next().ok_or_else(|| bad("no root line"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| bad("the root is not 32 bytes of base64"))?;
        if lines.any(str::is_empty) {
            return Err(bad("an extension line is empty"));
        }
        Ok(Checkpoint { origin: origin.to_string(), size, root })
    }

    /// Signs the body as a note.
    pub fn sign(&self, signer: &NoteSigner) -> Result<String, TrustError> {
        signer.sign(&self.body())
    }

    /// Opens a signed checkpoint note with `verifier`: the signature must
    /// verify and the origin must be the key's name.
    pub fn open(note: &str, verifier: &NoteVerifier) -> Result<Checkpoint, TrustError> {
        let cp = Checkpoint::parse(verifier.open(note)?)?;
        if cp.origin != verifier.name() {
            return Err(TrustError::Verification(format!(
                "the checkpoint's origin {:?} is not the key's name {:?}",
                cp.origin,
                verifier.name()
            )));
        }
        Ok(cp)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn body_parses_back_and_matches_the_spec_shape() {
        let root = crate::merkle::empty_root();
        let cp = Checkpoint { origin: "example.com/log".into(), size: 0, root };
        assert_eq!(cp.body(), "example.com/log\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n");
        assert_eq!(Checkpoint::parse(&cp.body()).unwrap(), cp);
        let ext = format!("{}extension line\n", cp.body());
        assert_eq!(Checkpoint::parse(&ext).unwrap(), cp);
        for bad in [
            "example.com/log\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "example.com/log\n1\n47DEQpj8HBSa\n",
            "example.com/log\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",
            "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
            "example.com/log\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        ] {
            assert!(Checkpoint::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn signed_checkpoints_bind_the_origin_to_the_key() {
        let signer = NoteSigner::generate("district.example/320902").unwrap();
        let cp = Checkpoint { origin: signer.name().into(), size: 7, root: [9; 32] };
        let note = cp.sign(&signer).unwrap();
        assert_eq!(Checkpoint::open(&note, &signer.verifier()).unwrap(), cp);
        let other = NoteSigner::generate("elsewhere").unwrap();
        let foreign =
            Checkpoint { origin: "district.example/320902".into(), ..cp }.sign(&other).unwrap();
        assert!(Checkpoint::open(&foreign, &other.verifier()).is_err());
        assert!(Checkpoint::open(&note.replace("\n7\n", "\n8\n"), &signer.verifier()).is_err());
    }
}
