//! C2SP signed notes with Ed25519 keys, and the key encodings of
//! `golang.org/x/mod/sumdb/note`.
//!
//! A note is UTF-8 text ending in a newline, then a blank line, then one
//! signature line per signer: `— <name> <base64(key id ‖ signature)>`. An
//! Ed25519 key's id is the first four bytes of
//! SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key); the signature covers the text.
//! The verifier key is published as `<name>+<hex id>+<base64(0x01 ‖ public key)>`
//! (the C2SP vkey form) and the signer key is stored as
//! `PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`, the same form Go's
//! `note.NewSigner` reads, so existing tooling accepts both.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::TrustError;

/// The signature-type byte of Ed25519 in C2SP signed notes.
pub const ALG_ED25519: u8 = 0x01;
/// The em dash (U+2014) and space that open every signature line.
const SIG_PREFIX: &str = "\u{2014} ";

/// Checks a key name (and so a log origin): non-empty UTF-8 without
/// whitespace or `+`, as signed notes require.
pub fn check_name(name: &str) -> Result<(), TrustError> {
    if name.is_empty() || name.contains('+') || name.chars().any(char::is_whitespace) {
        return Err(TrustError::Malformed(format!(
            "key name {name:?} must be non-empty, without spaces or '+'"
        )));
    }
    Ok(())
}

/// The 4-byte id of an Ed25519 key called `name`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// A signer: the log's private Ed25519 key under its name (the origin).
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for NoteSigner {
    // Never print the private key, not even in a debug log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoteSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl NoteSigner {
    /// A new key from the operating system's random source.
    pub fn generate(name: &str) -> Result<NoteSigner, TrustError> {
        check_name(name)?;
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed)
            .map_err(|e| TrustError::Io(format!("no randomness for a new key: {e}")))?;
        Ok(NoteSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// Parses the private-key form `PRIVATE+KEY+name+id+base64(0x01‖seed)`.
    pub fn parse(skey: &str) -> Result<NoteSigner, TrustError> {
        let bad = |why: &str| TrustError::Malformed(format!("signer key: {why}"));
        let rest = skey
            .trim_end()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or_else(|| bad("it must start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest).ok_or_else(|| bad("expected name+id+key"))?;
        check_name(name)?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let [alg, seed @ ..] = raw.as_slice() else { return Err(bad("the key is empty")) };
        if *alg != ALG_ED25519 {
            return Err(bad("not an Ed25519 key"));
        }
        let seed: [u8; 32] = seed.try_into().map_err(|_| bad("an Ed25519 seed has 32 bytes"))?;
        let signer = NoteSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) };
        if format!("{:08x}", signer.key_id()) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// The private-key form, for the 0600 key file and nothing else.
    pub fn to_skey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{:08x}+{}", self.name, self.key_id(), B64.encode(raw))
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.key.verifying_key().as_bytes())
    }

    /// The public half.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier { name: self.name.clone(), key: self.key.verifying_key() }
    }

    /// Signs `text` (UTF-8, ending in a newline) and returns the whole note.
    pub fn sign(&self, text: &str) -> Result<String, TrustError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.key_id().to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n{SIG_PREFIX}{} {}\n", self.name, B64.encode(blob)))
    }
}

fn split_key(s: &str) -> Option<(&str, &str, &str)> {
    // The base64 key may itself contain '+': split the first two only.
    let mut it = s.splitn(3, '+');
    let (name, id, key) = (it.next()?, it.next()?, it.next()?);
    if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        return None;
    }
    Some((name, id, key))
}

/// A verifier: a name and an Ed25519 public key, from the vkey form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// Parses `name+id+base64(0x01‖public key)`, checking the id.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, TrustError> {
        let bad = |why: &str| TrustError::Malformed(format!("verifier key: {why}"));
        let (name, id, key) = split_key(vkey.trim()).ok_or_else(|| bad("expected name+id+key"))?;
        check_name(name)?;
        let raw = B64.decode(key).map_err(|_| bad("the key is not base64"))?;
        let [alg, public @ ..] = raw.as_slice() else { return Err(bad("the key is empty")) };
        if *alg != ALG_ED25519 {
            return Err(bad("not an Ed25519 key (type byte 0x01)"));
        }
        let public: [u8; 32] = public.try_into().map_err(|_| bad("an Ed25519 key has 32 bytes"))?;
        let key =
            VerifyingKey::from_bytes(&public).map_err(|_| bad("not a valid Ed25519 point"))?;
        let v = NoteVerifier { name: name.to_string(), key };
        if format!("{:08x}", v.key_id()) != id {
            return Err(bad("the key id does not match the key"));
        }
        Ok(v)
    }

    /// The vkey form: `name+id+base64(0x01‖public key)`.
    pub fn to_vkey(&self) -> String {
        let mut raw = vec![ALG_ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{:08x}+{}", self.name, self.key_id(), B64.encode(raw))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key id.
    pub fn key_id(&self) -> u32 {
        key_id(&self.name, self.key.as_bytes())
    }

    /// Checks a signed note and returns its text: at least one signature
    /// line must be this key's (name and id) and verify. Lines of other
    /// keys are ignored, as the spec asks.
    pub fn open<'a>(&self, note: &'a str) -> Result<&'a str, TrustError> {
        let (text, sigs) = split_note(note)?;
        let mut found = false;
        for line in sigs.lines() {
            let rest = line.strip_prefix(SIG_PREFIX).ok_or_else(|| {
                TrustError::Malformed("a signature line must start with '— '".into())
            })?;
            let (name, blob) = rest.split_once(' ').ok_or_else(|| {
                TrustError::Malformed("a signature line is '— name signature'".into())
            })?;
            let blob = B64
                .decode(blob)
                .map_err(|_| TrustError::Malformed("a signature is not base64".into()))?;
            if name != self.name || blob.len() < 4 || blob[..4] != self.key_id().to_be_bytes() {
                continue;
            }
            found = true;
            let sig: [u8; 64] = blob[4..].try_into().map_err(|_| {
                TrustError::Verification("an Ed25519 signature has 64 bytes".into())
            })?;
            self.key.verify_strict(text.as_bytes(), &Signature::from_bytes(&sig)).map_err(
                |_| TrustError::Verification(format!("the signature of {name} does not verify")),
            )?;
        }
        if !found {
            return Err(TrustError::Verification(format!(
                "the note carries no signature of {}+{:08x}",
                self.name,
                self.key_id()
            )));
        }
        Ok(text)
    }
}

/// Checks note text: UTF-8 (by type), ends in a newline, no control
/// characters other than newline.
fn check_text(text: &str) -> Result<(), TrustError> {
    if !text.ends_with('\n') {
        return Err(TrustError::Malformed("note text must end with a newline".into()));
    }
    if text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(TrustError::Malformed("note text holds a control character".into()));
    }
    Ok(())
}

/// Splits a note at its last blank line into text and signature lines.
fn split_note(note: &str) -> Result<(&str, &str), TrustError> {
    let at = note.rfind("\n\n").ok_or_else(|| {
        TrustError::Malformed("the text is not signed: a signed note has a blank line and signature lines after its text".into())
    })?;
    let (text, sigs) = (&note[..=at], &note[at + 2..]);
    check_text(text)?;
    if sigs.is_empty() || !sigs.ends_with('\n') {
        return Err(TrustError::Malformed("a signed note ends with signature lines".into()));
    }
    Ok((text, sigs))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // golang.org/x/mod/sumdb/note's example key and note (note_test.go).
    const VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    const SKEY: &str =
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
    const TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
    const SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

    #[test]
    fn go_note_vectors_byte_for_byte() {
        let signer = NoteSigner::parse(SKEY).unwrap();
        assert_eq!(signer.to_skey(), SKEY);
        assert_eq!(signer.verifier().to_vkey(), VKEY);
        let note = signer.sign(TEXT).unwrap();
        assert_eq!(note, format!("{TEXT}\n{SIG}"));
        let v = NoteVerifier::parse(VKEY).unwrap();
        assert_eq!(v.open(&note).unwrap(), TEXT);
        assert!(v.open(&note.replace("cryptography", "cryptographY")).is_err());
    }

    #[test]
    fn manglings_of_the_vkey_are_refused() {
        let b = VKEY.as_bytes();
        for i in 0..b.len() {
            let mut m = b.to_vec();
            m[i] = m[i].wrapping_add(1);
            if let Ok(s) = std::str::from_utf8(&m) {
                assert!(NoteVerifier::parse(s).is_err(), "{s}");
            }
        }
        assert!(NoteVerifier::parse(&VKEY[..VKEY.len() - 1]).is_err());
        assert!(NoteSigner::parse(VKEY).is_err());
    }

    #[test]
    fn other_keys_lines_are_ignored_and_a_missing_key_fails() {
        let a = NoteSigner::generate("a.example/log").unwrap();
        let b = NoteSigner::generate("b.example/log").unwrap();
        let note = a.sign("hello\n").unwrap();
        let line_b = b.sign("hello\n").unwrap();
        let both = format!("{note}{}", &line_b["hello\n\n".len()..]);
        assert_eq!(a.verifier().open(&both).unwrap(), "hello\n");
        assert_eq!(b.verifier().open(&both).unwrap(), "hello\n");
        assert!(b.verifier().open(&note).is_err());
        assert!(a.sign("no newline").is_err());
        assert!(NoteSigner::generate("bad name").is_err());
        // Round trip of a generated key through its file form.
        let again = NoteSigner::parse(&a.to_skey()).unwrap();
        assert_eq!(again.verifier(), a.verifier());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Flipping any byte of the signature blob fails verification.
        #[test]
        fn a_tampered_signature_fails(pos in 0usize..68, bit in 0u8..8) {
            let signer = NoteSigner::parse(SKEY).unwrap();
            let note = signer.sign(TEXT).unwrap();
            let (head, blob) = note.trim_end().rsplit_once(' ').unwrap();
            let mut raw = B64.decode(blob).unwrap();
            raw[pos] ^= 1 << bit;
            let tampered = format!("{head} {}\n", B64.encode(raw));
            prop_assert!(signer.verifier().open(&tampered).is_err());
        }
    }
}
