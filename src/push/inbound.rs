//! From an HTTP request to a verified push: signature (constant time), freshness, safe-mode
//! decryption with the appid check (the previous EncodingAESKey as a fallback), XML. Pure
//! functions of their inputs, so the fuzz harness drives exactly what the route runs.

use super::event::Envelope;
use super::refusal::Refusal;
use super::xml::{self, Node};
use crate::config::{AppConfig, PushMode};
use crate::wechat::crypto::{MessageCrypto, signature, signature_matches};
use secrecy::ExposeSecret;
use serde::Deserialize;

/// The query WeChat puts on the push URL.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct PushQuery {
    pub signature: Option<String>,
    pub timestamp: Option<String>,
    pub nonce: Option<String>,
    pub echostr: Option<String>,
    pub openid: Option<String>,
    pub encrypt_type: Option<String>,
    pub msg_signature: Option<String>,
}

/// A push that passed every check.
#[derive(Debug)]
pub struct Inbound {
    /// The message XML: the body in plain mode, the decrypted `<Encrypt>` otherwise.
    pub xml: String,
    pub root: Node,
    pub envelope: Envelope,
    pub encrypted: bool,
    pub timestamp: i64,
    pub nonce: String,
    /// The signature that authenticated it (msg_signature when encrypted): the replay key.
    pub signature: String,
}

fn required<'a>(v: &'a Option<String>, name: &'static str) -> Result<&'a str, Refusal> {
    match v.as_deref() {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(Refusal::MissingParameter(name)),
    }
}

fn token(app: &AppConfig) -> Result<&str, Refusal> {
    app.push_token
        .as_ref()
        .map(|t| t.expose_secret())
        .ok_or_else(|| Refusal::NotConfigured(app.id.clone()))
}

/// The timestamp and nonce, checked for shape (not yet for freshness).
fn stamp(q: &PushQuery) -> Result<(&str, i64, &str), Refusal> {
    let ts_text = required(&q.timestamp, "timestamp")?;
    let nonce = required(&q.nonce, "nonce")?;
    let ts = ts_text
        .parse::<i64>()
        .ok()
        .filter(|_| ts_text.len() <= 12)
        .ok_or(Refusal::BadTimestamp)?;
    if nonce.len() > 64 {
        return Err(Refusal::BadNonce);
    }
    Ok((ts_text, ts, nonce))
}

fn check_signature(expected: &str, received: &str) -> Result<(), Refusal> {
    if signature_matches(expected, &received.to_ascii_lowercase()) {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// `GET` verification: the `echostr` to echo, only for a valid signature.
pub fn verify_echo<'q>(app: &AppConfig, q: &'q PushQuery) -> Result<&'q str, Refusal> {
    let token = token(app)?;
    let (ts_text, _, nonce) = stamp(q)?;
    let sig = required(&q.signature, "signature")?;
    let echostr = required(&q.echostr, "echostr")?;
    check_signature(&signature(&[token, ts_text, nonce]), sig)?;
    Ok(echostr)
}

/// Verifies and opens a `POST` push. `now` and `window_secs` decide freshness.
pub fn open(
    app: &AppConfig,
    q: &PushQuery,
    body: &[u8],
    now: i64,
    window_secs: i64,
) -> Result<Inbound, Refusal> {
    let token = token(app)?;
    let (ts_text, ts, nonce) = stamp(q)?;
    let body = std::str::from_utf8(body).map_err(|_| Refusal::NotUtf8)?;
    let outer = xml::parse(body).map_err(|e| Refusal::MalformedXml(e.0))?;
    let encrypted = match q.encrypt_type.as_deref() {
        Some("aes") => true,
        None | Some("") | Some("raw") => false,
        Some(_) => {
            return Err(Refusal::BadEncryptType);
        }
    };

    let (xml, root, sig) = if encrypted {
        let msg_sig = required(&q.msg_signature, "msg_signature")?;
        let encrypt = outer
            .field("Encrypt")
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .ok_or(Refusal::MissingEncrypt)?;
        check_signature(&signature(&[token, ts_text, nonce, encrypt]), msg_sig)?;
        if let Some(sig) = q.signature.as_deref().filter(|s| !s.is_empty()) {
            check_signature(&signature(&[token, ts_text, nonce]), sig)?;
        }
        fresh(ts, now, window_secs)?;
        let xml = decrypt(app, encrypt)?;
        let root = xml::parse(&xml)
            .map_err(|e| Refusal::MalformedXml(format!("decrypted message: {}", e.0)))?;
        (xml, root, msg_sig.to_ascii_lowercase())
    } else {
        let sig = required(&q.signature, "signature")?;
        check_signature(&signature(&[token, ts_text, nonce]), sig)?;
        if app.push_mode == PushMode::Safe {
            return Err(Refusal::EncryptionRequired);
        }
        fresh(ts, now, window_secs)?;
        (body.to_owned(), outer, sig.to_ascii_lowercase())
    };
    let envelope = Envelope::read(&root).map_err(Refusal::MalformedPush)?;
    Ok(Inbound {
        xml,
        root,
        envelope,
        encrypted,
        timestamp: ts,
        nonce: nonce.to_owned(),
        signature: sig,
    })
}

fn fresh(ts: i64, now: i64, window_secs: i64) -> Result<(), Refusal> {
    if (now - ts).abs() > window_secs {
        return Err(Refusal::StaleTimestamp {
            timestamp: ts,
            window_secs,
        });
    }
    Ok(())
}

/// Decrypts with the current key, then the previous one (key rotation). The current key's
/// error is the one reported.
fn decrypt(app: &AppConfig, encrypt: &str) -> Result<String, Refusal> {
    let appid = app.wechat.appid.as_str();
    let Some(current) = &app.encoding_aes_key else {
        return Err(Refusal::NoEncodingAesKey);
    };
    let first = MessageCrypto::new(current.expose_secret())?.decrypt(encrypt, appid);
    match (first, &app.encoding_aes_key_previous) {
        (Ok(xml), _) => Ok(xml),
        (Err(e), Some(prev)) => MessageCrypto::new(prev.expose_secret())?
            .decrypt(encrypt, appid)
            .map_err(|_| e.into()),
        (Err(e), None) => Err(e.into()),
    }
}

/// The encrypted reply envelope WeChat expects when a reply message is due in safe mode:
/// `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
pub fn encrypted_reply(
    crypto: &MessageCrypto,
    token: &str,
    appid: &str,
    reply_xml: &str,
    timestamp: &str,
    nonce: &str,
    random: &[u8; 16],
) -> String {
    let encrypt = crypto.encrypt_with_prefix(reply_xml, appid, random);
    let sig = signature(&[token, timestamp, nonce, &encrypt]);
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>{}</Nonce></xml>",
        xml::cdata(&encrypt),
        xml::cdata(&sig),
        xml::cdata(nonce)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freshness_allows_the_window_itself_and_refuses_one_second_past_it_either_way() {
        let now = 1_800_000_000;
        assert!(fresh(now - 60, now, 60).is_ok());
        assert!(fresh(now + 60, now, 60).is_ok());
        assert!(matches!(
            fresh(now - 61, now, 60),
            Err(Refusal::StaleTimestamp { timestamp, window_secs: 60 }) if timestamp == now - 61
        ));
        assert!(fresh(now + 61, now, 60).is_err());
    }
}
