//! Encryption at rest for the secrets we must keep and read back (mini-program session
//! keys, web access and refresh tokens, the global access tokens, the stored answer of a
//! callback): AES-256-GCM under the configured `storage_key`.
//!
//! A sealed value is `version (1) || nonce (12) || ciphertext || tag (16)`. The nonce is
//! random per value; the associated data binds a value to its row (app and openid), so a
//! sealed key copied onto another row does not open. In a text column it is written as
//! [`TEXT_PREFIX`] and base64, so a value written before sealing existed is told apart.
//!
//! A [`Keyring`] seals under the current key and opens with it or with
//! `storage_key_previous`, so the key can be rotated; `wxlink reseal` then re-seals every
//! value under the new key.

use crate::domain::ParseError;
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::RngExt;
use std::fmt;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The 32-byte key that seals stored secrets. Never printed (its Debug is redacted).
#[derive(Clone)]
pub struct StorageKey([u8; 32]);

/// A sealed value that does not open: another key, another row, or damaged bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("sealed value has an unknown format")]
    Format,
    #[error(
        "sealed value does not open with this storage key (key changed, or the value was moved or damaged)"
    )]
    Open,
}

impl StorageKey {
    /// 32 bytes written as 64 hex digits or as base64 (standard or URL-safe, padding
    /// optional), e.g. the output of `openssl rand -base64 32`. The message never repeats
    /// the value.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()) {
            hex::decode(s).ok()
        } else {
            [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
                .iter()
                .find_map(|e| e.decode(s).ok())
        };
        match bytes.map(<[u8; 32]>::try_from) {
            Some(Ok(key)) => Ok(Self(key)),
            Some(Err(b)) => Err(ParseError(format!(
                "must be 32 bytes, got {} (write 32 random bytes as base64 or 64 hex digits, e.g. `openssl rand -base64 32`)",
                b.len()
            ))),
            None => Err(ParseError(
                "is neither 64 hex digits nor base64 (write 32 random bytes, e.g. `openssl rand -base64 32`)".into(),
            )),
        }
    }

    /// A fresh random key (the sandbox keeps one beside its database).
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill(&mut key);
        Self(key)
    }

    /// The key as base64, the form [`StorageKey::parse`] reads back.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(&self.0).expect("a 32-byte key")
    }

    /// Encrypts `plaintext`, bound to `aad` (which is authenticated, not stored).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill(&mut nonce);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("AES-GCM encrypts any message shorter than 64 GiB");
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a value made by [`StorageKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != VERSION {
            return Err(SealError::Format);
        }
        let nonce: [u8; NONCE_LEN] = sealed[1..1 + NONCE_LEN].try_into().expect("12 bytes");
        self.cipher()
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map_err(|_| SealError::Open)
    }
}

/// Marks a sealed value in a text column; WeChat's tokens never contain a colon.
pub const TEXT_PREFIX: &str = "sealed1:";

/// Which key opened a value: anything but `Current` is re-sealed by `wxlink reseal` (and a
/// plain value at start-up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Sealed under the current key: nothing to do.
    Current,
    /// Sealed under `storage_key_previous`.
    Previous,
    /// Written in clear by a version before sealing.
    Plain,
}

/// The current storage key and the one before the last rotation.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: StorageKey,
    previous: Option<StorageKey>,
}

impl Keyring {
    pub fn new(current: StorageKey, previous: Option<StorageKey>) -> Self {
        Self { current, previous }
    }

    pub fn current(&self) -> &StorageKey {
        &self.current
    }

    /// Whether `storage_key_previous` is set (a rotation not yet finished by `reseal`).
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// Seals under the current key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        self.current.seal(plaintext, aad)
    }

    /// Opens with the current key, else with the previous one.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<(Vec<u8>, Opened), SealError> {
        match self.current.open(sealed, aad) {
            Ok(p) => Ok((p, Opened::Current)),
            Err(e) => match &self.previous {
                Some(old) => old
                    .open(sealed, aad)
                    .map(|p| (p, Opened::Previous))
                    .map_err(|_| e),
                None => Err(e),
            },
        }
    }

    /// Seals text for a text column: [`TEXT_PREFIX`] and the sealed bytes in base64.
    pub fn seal_text(&self, plaintext: &str, aad: &[u8]) -> String {
        format!(
            "{TEXT_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.seal(plaintext.as_bytes(), aad))
        )
    }

    /// Opens what [`Keyring::seal_text`] wrote; a value without the prefix was written in
    /// clear before sealing and is returned as it is (`Opened::Plain`).
    pub fn open_text(&self, stored: &str, aad: &[u8]) -> Result<(String, Opened), SealError> {
        let Some(b64) = stored.strip_prefix(TEXT_PREFIX) else {
            return Ok((stored.to_owned(), Opened::Plain));
        };
        let sealed = URL_SAFE_NO_PAD.decode(b64).map_err(|_| SealError::Format)?;
        let (plain, which) = self.open(&sealed, aad)?;
        Ok((
            String::from_utf8(plain).map_err(|_| SealError::Format)?,
            which,
        ))
    }
}

impl fmt::Debug for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StorageKey(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_hex_and_base64_and_names_the_length() {
        let hex_key = "00".repeat(32);
        assert!(StorageKey::parse(&hex_key).is_ok());
        let b64 = STANDARD.encode([7u8; 32]);
        assert_eq!(StorageKey::parse(&b64).unwrap().0, [7u8; 32]);
        assert_eq!(
            StorageKey::parse(b64.trim_end_matches('=')).unwrap().0,
            [7u8; 32]
        );
        let short = StorageKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(short.0.contains("got 16"), "{short}");
        let garbage = StorageKey::parse("correct horse battery staple").unwrap_err();
        assert!(
            !garbage.0.contains("horse"),
            "never echo the value: {garbage}"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = StorageKey::parse(&"ab".repeat(32)).unwrap();
        assert_eq!(format!("{k:?}"), "StorageKey(…)");
    }

    #[test]
    fn sealed_values_do_not_open_with_another_key_or_row() {
        let k = StorageKey::generate();
        let sealed = k.seal(b"session-key", b"mp|o1");
        assert_eq!(k.open(&sealed, b"mp|o1").unwrap(), b"session-key");
        assert_eq!(k.open(&sealed, b"mp|o2"), Err(SealError::Open));
        assert_eq!(
            StorageKey::generate().open(&sealed, b"mp|o1"),
            Err(SealError::Open)
        );
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(k.open(&damaged, b"mp|o1"), Err(SealError::Open));
        assert_eq!(k.open(&sealed[..10], b"mp|o1"), Err(SealError::Format));
        // A fresh nonce each time: the same plaintext never seals to the same bytes.
        assert_ne!(k.seal(b"session-key", b"mp|o1"), sealed);
    }

    #[test]
    fn a_keyring_opens_what_the_previous_key_sealed_and_seals_under_the_new_one() {
        let old = StorageKey::generate();
        let new = StorageKey::generate();
        let sealed_old = Keyring::new(old.clone(), None).seal_text("tok", b"row");
        let ring = Keyring::new(new.clone(), Some(old));
        assert_eq!(
            ring.open_text(&sealed_old, b"row").unwrap(),
            ("tok".to_owned(), Opened::Previous)
        );
        let sealed_new = ring.seal_text("tok", b"row");
        assert!(sealed_new.starts_with(TEXT_PREFIX) && !sealed_new.contains("tok"));
        assert_eq!(
            Keyring::new(new, None)
                .open_text(&sealed_new, b"row")
                .unwrap(),
            ("tok".to_owned(), Opened::Current)
        );
        assert_eq!(
            ring.open_text("plain-token", b"row").unwrap(),
            ("plain-token".to_owned(), Opened::Plain)
        );
        assert_eq!(
            Keyring::new(StorageKey::generate(), None).open_text(&sealed_old, b"row"),
            Err(SealError::Open)
        );
        assert_eq!(ring.open_text("sealed1:!!", b"row"), Err(SealError::Format));
    }

    proptest! {
        #[test]
        fn seal_then_open_round_trips(msg in proptest::collection::vec(any::<u8>(), 0..200),
                                      aad in proptest::collection::vec(any::<u8>(), 0..40)) {
            let k = StorageKey::generate();
            let sealed = k.seal(&msg, &aad);
            prop_assert_eq!(k.open(&sealed, &aad).unwrap(), msg);
        }

        #[test]
        fn open_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = StorageKey::generate().open(&data, b"");
        }
    }
}
