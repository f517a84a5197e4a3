//! Random one-time codes (link tickets, login codes) and how they are stored: hashed, so a
//! copy of the database does not hand out working links.

use rand::RngExt;
use sha2::{Digest, Sha256};
use std::fmt;

/// A freshly minted random code. Only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct OneTimeCode(String);

/// `len` random letters and digits: codes, tickets, states, simulated tokens.
pub fn random_alphanumeric(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

impl OneTimeCode {
    pub fn generate() -> Self {
        Self(random_alphanumeric(40))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> String {
        hash_token(&self.0)
    }
}

impl fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OneTimeCode(…)")
    }
}

/// Hex SHA-256, the stored form of codes, tickets and API keys.
pub fn hash_token(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}
