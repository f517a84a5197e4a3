//! Standard Webhooks signing (<https://www.standardwebhooks.com/>), through the scheme's
//! own Rust library: `webhook-id`, `webhook-timestamp`, and `webhook-signature` with one
//! `v1,<base64 HMAC-SHA256>` per active secret, so a receiver holding either the old or
//! the new secret during a rotation verifies.

use secrecy::{ExposeSecret, SecretString};
use standardwebhooks::Webhook;

/// The secrets of one endpoint, ready to sign.
pub struct Signer {
    keys: Vec<Webhook>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({} secrets)", self.keys.len())
    }
}

/// The three headers of one delivery attempt.
#[derive(Debug, Clone)]
pub struct Signed {
    pub id: String,
    pub timestamp: i64,
    /// Space-separated `v1,<signature>`, one per secret.
    pub signature: String,
}

impl Signer {
    /// Configuration checked every secret already; one that does not decode is refused.
    pub fn new(secrets: &[SecretString]) -> Result<Self, standardwebhooks::WebhookError> {
        let keys = secrets
            .iter()
            .map(|s| Webhook::new(s.expose_secret()))
            .collect::<Result<_, _>>()?;
        Ok(Self { keys })
    }

    /// Signs `body` for the message `id` at unix time `timestamp` with every secret.
    pub fn sign(&self, id: &str, timestamp: i64, body: &str) -> Signed {
        let signature = self
            .keys
            .iter()
            .map(|k| {
                k.sign(id, timestamp, body.as_bytes())
                    .expect("a str body is valid UTF-8")
            })
            .collect::<Vec<_>>()
            .join(" ");
        Signed {
            id: id.to_owned(),
            timestamp,
            signature,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scheme's published test vector.
    #[test]
    fn signs_like_the_specification() {
        let s =
            Signer::new(&[SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD")]).unwrap();
        let signed = s.sign(
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            r#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(
            signed.signature,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn every_secret_signs() {
        let s = Signer::new(&[
            SecretString::from("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
        ])
        .unwrap();
        let signed = s.sign("evt_1", 1, "{}");
        assert_eq!(signed.signature.split(' ').count(), 2);
        assert!(signed.signature.split(' ').all(|p| p.starts_with("v1,")));
    }
}
