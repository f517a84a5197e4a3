//! People talking to an Official Account: a text message (`MsgType` text, `Content`,
//! `MsgId`) or a menu click (`Event` CLICK, `EventKey`), pushed to the app's push URL like
//! WeChat's other pushes; and the reading of the answer, which for these may be a passive
//! reply (plain, or in safe mode the encrypted envelope, whose `MsgSignature` is checked
//! and whose message is decrypted), recorded in `GET /_sim/pushes`.

use super::Sim;
use super::push::{PushSetupError, original_id};
use crate::push::xml::{self, cdata};
use crate::wechat::crypto::{MessageCrypto, signature, signature_matches};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/_sim/people/{id}/text", post(text))
        .route("/_sim/people/{id}/click", post(click))
}

impl Sim {
    /// The person sends the account a text message.
    pub fn person_text(
        &self,
        appid: &str,
        person: &str,
        content: &str,
    ) -> Result<u64, PushSetupError> {
        if content.is_empty() {
            return Err(PushSetupError::Invalid("content is empty".into()));
        }
        let openid = self.known_openid(appid, person)?;
        // MsgIds are 64-bit; the time keeps them rising across simulator restarts.
        let msgid = self.clock.now() * 1_000_000 + (self.next_msg_seq() % 1_000_000) as i64;
        let xml = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{}</Content><MsgId>{msgid}</MsgId></xml>",
            cdata(&original_id(appid)),
            cdata(&openid),
            self.clock.now(),
            cdata(content),
        );
        self.start_push(appid, Some(openid), "text".into(), Some(msgid), xml, 0)
    }

    /// The person taps a menu button of type `click` with this key.
    pub fn person_click(
        &self,
        appid: &str,
        person: &str,
        key: &str,
    ) -> Result<u64, PushSetupError> {
        if key.is_empty() || key.len() > 128 {
            return Err(PushSetupError::Invalid(
                "key must be 1 to 128 bytes (WeChat's menu key limit)".into(),
            ));
        }
        let openid = self.known_openid(appid, person)?;
        let xml = format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[CLICK]]></Event><EventKey>{}</EventKey></xml>",
            cdata(&original_id(appid)),
            cdata(&openid),
            self.clock.now(),
            cdata(key),
        );
        self.start_push(appid, Some(openid), "CLICK".into(), None, xml, 0)
    }

    fn known_openid(&self, appid: &str, person: &str) -> Result<String, PushSetupError> {
        if self.person(person).is_none() {
            return Err(PushSetupError::UnknownPerson(person.to_owned()));
        }
        Ok(self.openid_of(appid, person))
    }
}

/// What an answer to a push says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answered {
    /// `success` or empty: no reply.
    NoReply,
    /// A reply message (decrypted when it came encrypted).
    Reply(String),
    /// An answer WeChat cannot use; the person would see "该公众号暂时无法提供服务".
    Bad(String),
}

/// What the simulator needs to read a reply: the app's token, appid, key and mode, and
/// whom the push came from (the reply must go back to them).
pub(super) struct ReplyCheck {
    pub token: String,
    pub appid: String,
    pub key: Option<MessageCrypto>,
    pub mode: String,
    pub openid: Option<String>,
}

/// Reads the answer to a push as WeChat does.
pub(super) fn read_answer(answer: &str, c: &ReplyCheck) -> Answered {
    let t = answer.trim();
    if t.is_empty() || t == "success" {
        return Answered::NoReply;
    }
    let outer = match xml::parse(t) {
        Ok(root) => root,
        Err(e) => return Answered::Bad(format!("the answer is not a reply XML: {}", e.0)),
    };
    let message = match outer.field("Encrypt") {
        Some(encrypt) => {
            let Some(key) = &c.key else {
                return Answered::Bad("an encrypted reply to an app in plain mode".into());
            };
            let (Some(sig), Some(ts), Some(nonce)) = (
                outer.field("MsgSignature"),
                outer.field("TimeStamp"),
                outer.field("Nonce"),
            ) else {
                return Answered::Bad(
                    "the encrypted reply lacks MsgSignature, TimeStamp or Nonce".into(),
                );
            };
            let (encrypt, ts, nonce) = (encrypt.trim(), ts.trim(), nonce.trim());
            let expected = signature(&[&c.token, ts, nonce, encrypt]);
            if !signature_matches(&expected, &sig.trim().to_ascii_lowercase()) {
                return Answered::Bad("the encrypted reply's MsgSignature does not match".into());
            }
            match key.decrypt(encrypt, &c.appid) {
                Ok(m) => m,
                Err(e) => return Answered::Bad(format!("the encrypted reply does not open: {e}")),
            }
        }
        None if c.mode == "safe" => {
            return Answered::Bad("safe mode: the reply must be encrypted".into());
        }
        None => t.to_owned(),
    };
    let root = match xml::parse(&message) {
        Ok(r) => r,
        Err(e) => return Answered::Bad(format!("the reply is not XML: {}", e.0)),
    };
    if root.field("MsgType").is_none_or(|m| m.trim().is_empty()) {
        return Answered::Bad("the reply has no MsgType".into());
    }
    let to = root.field("ToUserName").map(str::trim);
    if let Some(openid) = &c.openid
        && to != Some(openid.as_str())
    {
        return Answered::Bad(format!(
            "the reply's ToUserName {to:?} is not the sender {openid:?}"
        ));
    }
    Answered::Reply(message)
}

#[derive(Deserialize)]
struct TextRequest {
    #[serde(alias = "app")]
    appid: String,
    content: String,
}

#[derive(Deserialize)]
struct ClickRequest {
    #[serde(alias = "app")]
    appid: String,
    key: String,
}

type Reply = (StatusCode, Json<Value>);

fn answer(r: Result<u64, PushSetupError>) -> Reply {
    match r {
        Ok(id) => (StatusCode::ACCEPTED, Json(json!({ "push": id }))),
        Err(e) => (e.status(), Json(json!({ "error": e.to_string() }))),
    }
}

async fn text(State(sim): State<Sim>, Path(id): Path<String>, Json(r): Json<TextRequest>) -> Reply {
    answer(sim.person_text(&r.appid, &id, &r.content))
}

async fn click(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(r): Json<ClickRequest>,
) -> Reply {
    answer(sim.person_click(&r.appid, &id, &r.key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::inbound::encrypted_reply;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    fn check(mode: &str) -> ReplyCheck {
        ReplyCheck {
            token: "tok123".into(),
            appid: "wx2c2769f8efd9abc2".into(),
            key: (mode != "plain").then(|| MessageCrypto::new(KEY).unwrap()),
            mode: mode.into(),
            openid: Some("oPerson".into()),
        }
    }

    const REPLY: &str = "<xml><ToUserName><![CDATA[oPerson]]></ToUserName><FromUserName><![CDATA[gh_x]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content></xml>";

    #[test]
    fn plain_and_encrypted_replies_are_read_as_wechat_reads_them() {
        assert_eq!(read_answer("success", &check("safe")), Answered::NoReply);
        assert_eq!(read_answer("", &check("plain")), Answered::NoReply);
        assert_eq!(
            read_answer(REPLY, &check("plain")),
            Answered::Reply(REPLY.into())
        );
        let c = check("safe");
        let sealed = encrypted_reply(
            c.key.as_ref().unwrap(),
            "tok123",
            "wx2c2769f8efd9abc2",
            REPLY,
            "1713424427",
            "415670741",
            &[7; 16],
        );
        assert_eq!(read_answer(&sealed, &c), Answered::Reply(REPLY.into()));
        // A plain reply in safe mode, a forged signature, a reply to someone else.
        assert!(matches!(read_answer(REPLY, &c), Answered::Bad(_)));
        let forged = sealed.replace("<TimeStamp>1713424427", "<TimeStamp>1713424428");
        assert!(matches!(read_answer(&forged, &c), Answered::Bad(e) if e.contains("MsgSignature")));
        let other = REPLY.replace("oPerson", "oOther");
        assert!(
            matches!(read_answer(&other, &check("plain")), Answered::Bad(e) if e.contains("ToUserName"))
        );
        assert!(matches!(
            read_answer("<html>oops</html>", &check("plain")),
            Answered::Bad(_)
        ));
    }
}
