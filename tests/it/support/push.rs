//! Helpers of the push tests: pushes crafted and signed by hand, sent to the service, and
//! the simulator's own pushes waited for.

use super::service::TestApp;
use reqwest::StatusCode;
use wxlink::domain::{AppId, OpenId};
use wxlink::wechat::crypto::{MessageCrypto, signature};

/// A push crafted by hand: query string and body, signed with `token` (and encrypted
/// with `key` for `appid` when given).
pub struct Crafted {
    pub query: String,
    pub body: String,
}

pub fn craft(token: &str, ts: i64, nonce: &str, xml: &str, enc: Option<(&str, &str)>) -> Crafted {
    let ts = ts.to_string();
    let sig = signature(&[token, &ts, nonce]);
    match enc {
        None => Crafted {
            query: format!("signature={sig}&timestamp={ts}&nonce={nonce}"),
            body: xml.to_owned(),
        },
        Some((key, appid)) => {
            let encrypt = MessageCrypto::new(key).unwrap().encrypt(xml, appid);
            sealed(token, &ts, nonce, &encrypt)
        }
    }
}

/// A safe-mode push carrying `encrypt` as it is, correctly signed.
pub fn sealed(token: &str, ts: &str, nonce: &str, encrypt: &str) -> Crafted {
    let sig = signature(&[token, ts, nonce]);
    let msg_sig = signature(&[token, ts, nonce, encrypt]);
    Crafted {
        query: format!(
            "signature={sig}&timestamp={ts}&nonce={nonce}&encrypt_type=aes&msg_signature={msg_sig}"
        ),
        body: format!(
            "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
    }
}

pub async fn post(t: &TestApp, app: &str, c: &Crafted) -> (StatusCode, String) {
    let r = t
        .api
        .post(t.url(&format!("/wechat/{app}/push?{}", c.query)))
        .header("content-type", "text/xml")
        .body(c.body.clone())
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// What decrypting under the wrong key gives: almost always a padding error, rarely
/// garbage whose padding happens to look right.
pub const GARBAGE: &str = "bad_padding|bad_framing|wrong_appid|not_utf8";

pub fn follow_xml(openid: &str, create_time: i64, event: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_x]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName><CreateTime>{create_time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[{event}]]></Event><EventKey><![CDATA[]]></EventKey></xml>"
    )
}

pub async fn follows(t: &TestApp, app: &str, openid: &str) -> (Option<bool>, Option<String>) {
    let id = t
        .ctx
        .store
        .identity(&AppId::parse(app).unwrap(), &OpenId::parse(openid).unwrap())
        .await
        .unwrap();
    match id {
        Some(i) => (i.follows, i.user_id.map(|u| u.to_string())),
        None => (None, None),
    }
}

impl TestApp {
    /// Waits until the simulator has finished at least `n` pushes (acknowledged or retries
    /// spent) and returns every push.
    pub async fn settled_pushes(&self, n: usize) -> Vec<wxlink::sim::push::PushRecord> {
        for _ in 0..300 {
            let pushes = self.sim.pushes();
            if pushes.iter().filter(|p| p.finished).count() >= n {
                return pushes;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("fewer than {n} pushes settled: {:#?}", self.sim.pushes());
    }
}
