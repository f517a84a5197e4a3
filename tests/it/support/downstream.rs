//! A downstream test double: the handler an Official Account had before wxlink, on a port
//! of its own. Like a real one it checks WeChat's signature itself (plain mode: `signature`
//! over token, timestamp and nonce; safe mode: `msg_signature` over those and `<Encrypt>`,
//! then decrypts with the EncodingAESKey and checks the appid), with its own SHA-1 and
//! AES code rather than wxlink's, and answers a passive reply (encrypted in safe mode),
//! `success`, late, or with an error, as told.

use aes::cipher::{BlockModeDecrypt, BlockModeEncrypt, KeyIvInit, block_padding::NoPadding};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the double answers a push that verifies (one that does not gets 401).
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// A text reply to the sender: `echo: ` and the message's `Content` or `EventKey`.
    Reply,
    /// `success`: no reply.
    Success,
    /// The reply, after this long.
    ReplyAfter(Duration),
    /// This status, and a body WeChat cannot use.
    Fail(u16),
}

/// One request as the double received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The query string, untouched.
    pub query: String,
    pub body: String,
    /// The verified message (decrypted in safe mode), or why it did not verify.
    pub message: Result<String, String>,
}

struct Inner {
    token: String,
    /// The AES key and the appid, for safe mode.
    aes: Option<([u8; 32], String)>,
    behaviour: Mutex<Behaviour>,
    seen: Mutex<Vec<Seen>>,
}

/// A running downstream; it stops with the test's runtime.
pub struct Downstream {
    /// Its URL, to give as `forward_url`.
    pub url: String,
    inner: Arc<Inner>,
}

impl Downstream {
    /// Starts a handler checking `token`, and in safe mode `(encoding_aes_key, appid)`.
    pub async fn start(token: &str, aes: Option<(&str, &str)>, behaviour: Behaviour) -> Self {
        let aes = aes.map(|(key, appid)| {
            let bytes = base64::engine::GeneralPurpose::new(
                &base64::alphabet::STANDARD,
                base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
            )
            .decode(format!("{key}="))
            .unwrap();
            (<[u8; 32]>::try_from(bytes).unwrap(), appid.to_owned())
        });
        let inner = Arc::new(Inner {
            token: token.to_owned(),
            aes,
            behaviour: Mutex::new(behaviour),
            seen: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wechat", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, inner }
    }

    /// A URL where nothing listens: a downstream that is down.
    pub async fn down() -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/wechat", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    pub fn set(&self, b: Behaviour) {
        *self.inner.behaviour.lock().unwrap() = b;
    }
}

fn sha1_sorted(parts: &[&str]) -> String {
    let mut parts = parts.to_vec();
    parts.sort_unstable();
    hex::encode(Sha1::digest(parts.concat().as_bytes()))
}

/// The text of `<name>` in a flat WeChat XML, CDATA or not.
pub fn field(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&format!("</{name}>"))?;
    let v = &xml[start..end];
    Some(
        v.strip_prefix("<![CDATA[")
            .and_then(|v| v.strip_suffix("]]>"))
            .unwrap_or(v)
            .to_owned(),
    )
}

impl Inner {
    fn verify(&self, q: &HashMap<String, String>, body: &str) -> Result<String, String> {
        let get = |k: &str| q.get(k).map(String::as_str).ok_or(format!("no {k}"));
        let (ts, nonce) = (get("timestamp")?, get("nonce")?);
        if q.get("encrypt_type").map(String::as_str) == Some("aes") {
            let (key, appid) = self.aes.as_ref().ok_or("an encrypted push, no key")?;
            let encrypt = field(body, "Encrypt").ok_or("no <Encrypt>")?;
            if sha1_sorted(&[&self.token, ts, nonce, &encrypt]) != get("msg_signature")? {
                return Err("msg_signature does not match".into());
            }
            let mut data = STANDARD.decode(encrypt).map_err(|e| e.to_string())?;
            let plain = cbc::Decryptor::<aes::Aes256>::new_from_slices(key, &key[..16])
                .unwrap()
                .decrypt_padded::<NoPadding>(&mut data)
                .map_err(|e| e.to_string())?;
            let pad = *plain.last().unwrap() as usize;
            let body = &plain[..plain.len() - pad];
            let len = u32::from_be_bytes(body[16..20].try_into().unwrap()) as usize;
            let (msg, tail) = body[20..].split_at(len);
            if tail != appid.as_bytes() {
                return Err("the message is for another appid".into());
            }
            String::from_utf8(msg.to_vec()).map_err(|e| e.to_string())
        } else {
            if sha1_sorted(&[&self.token, ts, nonce]) != get("signature")? {
                return Err("signature does not match".into());
            }
            Ok(body.to_owned())
        }
    }

    /// A text reply to the message's sender.
    fn reply(&self, message: &str, encrypted: bool) -> String {
        let said = field(message, "Content")
            .or_else(|| field(message, "EventKey"))
            .unwrap_or_default();
        let reply = format!(
            "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[echo: {said}]]></Content></xml>",
            field(message, "FromUserName").unwrap_or_default(),
            field(message, "ToUserName").unwrap_or_default(),
            field(message, "CreateTime").unwrap_or_default(),
        );
        let (true, Some((key, appid))) = (encrypted, &self.aes) else {
            return reply;
        };
        let mut plain = vec![7u8; 16];
        plain.extend_from_slice(&(reply.len() as u32).to_be_bytes());
        plain.extend_from_slice(reply.as_bytes());
        plain.extend_from_slice(appid.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let n = plain.len();
        let cipher = cbc::Encryptor::<aes::Aes256>::new_from_slices(key, &key[..16])
            .unwrap()
            .encrypt_padded::<NoPadding>(&mut plain, n)
            .unwrap()
            .to_vec();
        let encrypt = STANDARD.encode(cipher);
        let (ts, nonce) = ("1713424427", "415670741");
        let sig = sha1_sorted(&[&self.token, ts, nonce, &encrypt]);
        format!(
            "<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature><TimeStamp>{ts}</TimeStamp><Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
    }
}

async fn handle(State(d): State<Arc<Inner>>, method: Method, uri: Uri, body: Bytes) -> Response {
    let query = uri.query().unwrap_or("").to_owned();
    let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let body = String::from_utf8_lossy(&body).into_owned();
    let message = d.verify(&q, &body);
    d.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        query,
        body,
        message: message.clone(),
    });
    let message = match message {
        Ok(m) => m,
        Err(why) => return (StatusCode::UNAUTHORIZED, why).into_response(),
    };
    if method == Method::GET
        && let Some(echostr) = q.get("echostr")
    {
        // The console's verification (and `wxlink check`'s).
        return echostr.clone().into_response();
    }
    let behaviour = d.behaviour.lock().unwrap().clone();
    let encrypted = q.get("encrypt_type").map(String::as_str) == Some("aes");
    match behaviour {
        Behaviour::Success => "success".into_response(),
        Behaviour::Fail(status) => (
            StatusCode::from_u16(status).unwrap(),
            "<html>the handler broke</html>",
        )
            .into_response(),
        Behaviour::ReplyAfter(d_) => {
            tokio::time::sleep(d_).await;
            d.reply(&message, encrypted).into_response()
        }
        Behaviour::Reply => d.reply(&message, encrypted).into_response(),
    }
}
