//! Stock third-party WeChat clients against a real `wxlink sim` process: wechatpy (Python),
//! wechat-oauth and co-wechat-api (Node.js), as published, configured only with the
//! simulator's URL (README: "The simulator as a drop-in"). They are the evidence that the
//! simulator answers as WeChat does. The scripts are `tests/peers/*`.

use crate::support::peers::{Peer, root, wxlink_sim};
use crate::support::sim::SimClient;
use serde_json::{Value, json};

const OA: &str = "wxpeeroa0000001";
const MP: &str = "wxpeermp0000002";
const WECHATPY: Peer = Peer::python(
    "import wechatpy, cryptography, requests",
    "wechatpy 1.8.18 (pip install wechatpy[cryptography]==1.8.18)",
);
const NODE_CLIENTS: Peer = Peer::node(
    "require('wechat-oauth'); require('co-wechat-api')",
    "wechat-oauth 1.5.0 and co-wechat-api 3.11.0 (npm install, in NODE_PATH)",
);

/// A simulator with an Official Account and a mini-program on the authorization domain
/// `peer.example.com`, one person, a template of each kind and one subscription accepted.
struct World {
    sim: SimClient,
    person: Value,
    template: String,
    subscribe_template: String,
    /// The Official Account's subscribe-notification template, accepted once.
    oa_subscribe_template: String,
}

impl World {
    async fn start(sim: SimClient) -> Self {
        for (appid, kind, secret) in [
            (OA, "official_account", "oa-secret"),
            (MP, "mini_program", "mp-secret"),
        ] {
            sim.add_app(json!({"appid": appid, "secret": secret, "kind": kind,
                "auth_domain": "peer.example.com", "unionid_group": "peers"}))
                .await;
        }
        let person = sim.person("同伴").await;
        let template = sim
            .template(OA, "template", "{{keyword1.DATA}} {{keyword2.DATA}}")
            .await;
        let subscribe_template = sim.template(MP, "subscribe", "{{thing1.DATA}}").await;
        let oa_subscribe_template = sim.template(OA, "subscribe", "{{thing1.DATA}}").await;
        for (appid, tpl) in [(MP, &subscribe_template), (OA, &oa_subscribe_template)] {
            sim.post(
                "/_sim/subscriptions",
                json!({"appid": appid, "person": person["id"], "template_id": tpl}),
            )
            .await;
        }
        Self {
            sim,
            person,
            template,
            subscribe_template,
            oa_subscribe_template,
        }
    }

    fn openid(&self, appid: &str) -> String {
        self.person["openids"][appid].as_str().unwrap().to_owned()
    }

    async fn env(&self) -> Vec<(&'static str, String)> {
        let id = self.person["id"].as_str().unwrap();
        vec![
            ("WXLINK_SIM", self.sim.base().to_owned()),
            ("OA_APPID", OA.into()),
            ("OA_SECRET", "oa-secret".into()),
            ("MP_APPID", MP.into()),
            ("MP_SECRET", "mp-secret".into()),
            ("OA_OPENID", self.openid(OA)),
            ("MP_OPENID", self.openid(MP)),
            ("TEMPLATE_ID", self.template.clone()),
            ("SUB_TEMPLATE_ID", self.subscribe_template.clone()),
            ("OA_SUB_TEMPLATE_ID", self.oa_subscribe_template.clone()),
            ("JS_CODE", self.sim.login_code(id, MP).await),
            ("PERSON", id.to_owned()),
        ]
    }

    /// The msgid of the one message the simulator received on `channel`.
    async fn msgid(&self, channel: &str) -> String {
        let got = self.sim.messages(&format!("?channel={channel}")).await;
        assert_eq!(got.len(), 1, "{got:?}");
        match &got[0]["msgid"] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[tokio::test]
async fn stock_wechatpy_drives_the_simulator() {
    if !WECHATPY.available("wechatpy against the simulator").await {
        return;
    }
    let (_child, sim) = wxlink_sim().await;
    let w = World::start(sim).await;
    let out = WECHATPY
        .run_json("tests/peers/wechatpy_sim.py", &w.env().await)
        .await;

    assert!(out["token"].as_str().is_some_and(|t| t.len() > 20), "{out}");
    assert_eq!(out["template"]["errcode"], 0);
    assert_eq!(
        out["template"]["msgid"].to_string(),
        w.msgid("template").await
    );
    assert_eq!(
        out["subscribe"]["msgid"].to_string(),
        w.msgid("subscribe").await
    );
    // bizsend answers no msgid; the simulator received the notification with its page.
    assert_eq!(out["oa_subscribe"], json!({"errcode": 0, "errmsg": "ok"}));
    let got = w.sim.messages("?channel=oa_subscribe").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["page"], "https://peer.example.com/orders/1");
    assert_eq!(out["session"]["openid"], w.openid(MP).as_str());
    assert_eq!(out["session"]["unionid"], w.person["unionids"][MP]);
    assert!(out["session"]["session_key"].is_string());
    assert_eq!(out["state"], "peer1");
    assert_eq!(out["web_openid"], w.openid(OA).as_str());
    assert_eq!(out["user"]["nickname"], "同伴");
    assert_eq!(out["user"]["unionid"], w.person["unionids"][OA]);
    assert_eq!(out["check"], true);
    assert_eq!(out["refreshed_openid"], w.openid(OA).as_str());
    // WeChat's refusals, as wechatpy's own exceptions with WeChat's errcode.
    let errors = &out["errors"];
    for (case, errcode, class) in [
        ("code_reused", 40163, "WeChatOAuthException"),
        ("unknown_web_token", 40001, "WeChatOAuthException"),
        ("js_code_reused", 40163, "WeChatClientException"),
        ("unknown_template", 40037, "WeChatClientException"),
        ("no_subscription_left", 43101, "WeChatClientException"),
        ("oa_no_subscription_left", 43101, "WeChatClientException"),
        ("oa_field_rule", 47003, "WeChatClientException"),
        ("wrong_secret", 40125, "WeChatClientException"),
    ] {
        assert_eq!(
            errors[case],
            json!({"errcode": errcode, "class": class}),
            "{case}: {errors}"
        );
    }
}

#[tokio::test]
async fn stock_wechat_oauth_and_co_wechat_api_drive_the_simulator() {
    if !NODE_CLIENTS
        .available("wechat-oauth and co-wechat-api against the simulator")
        .await
    {
        return;
    }
    let (_child, sim) = wxlink_sim().await;
    let w = World::start(sim).await;
    let out = NODE_CLIENTS
        .run_json("tests/peers/wechat_oauth_sim.js", &w.env().await)
        .await;

    // wechat-oauth: the link in WeChat's order, the code exchanged, the profile read.
    let link = out["authorize_url"].as_str().unwrap();
    assert!(
        link.starts_with(&format!(
            "{}/connect/oauth2/authorize?appid={OA}&redirect_uri=https%3A%2F%2Fpeer.example.com%2Fcb&response_type=code&scope=snsapi_userinfo&state=peer2",
            w.sim.base()
        )),
        "{link}"
    );
    assert_eq!(out["state"], "peer2");
    assert_eq!(out["openid"], w.openid(OA).as_str());
    assert_eq!(out["scope"], "snsapi_userinfo");
    assert_eq!(out["user"]["nickname"], "同伴");
    assert_eq!(out["verified"]["errcode"], 0);
    assert_eq!(
        out["code_reused"],
        json!({"name": "WeChatAPIError", "code": 40163})
    );
    // co-wechat-api: its token through the saveToken hook, a template send whose 64-bit
    // msgid survives (json-bigint), WeChat's refusals as its errors.
    assert_eq!(out["saves"], json!(["token"]));
    assert_eq!(out["template"]["errcode"], 0);
    assert_eq!(out["template"]["msgid"], w.msgid("template").await.as_str());
    assert_eq!(
        out["unknown_template"],
        json!({"name": "WeChatAPIError", "code": 40037})
    );
    assert_eq!(
        out["wrong_secret"],
        json!({"name": "WeChatAPIError", "code": 40125})
    );
}

/// README's "drop-in" configuration is the one these tests run.
#[test]
fn the_readme_shows_the_configuration_the_peers_run() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for script in [
        "tests/peers/wechatpy_sim.py",
        "tests/peers/wechat_oauth_sim.js",
    ] {
        let text = std::fs::read_to_string(root().join(script)).unwrap();
        const BEGIN: &str = "drop-in: begin\n";
        let start = text
            .find(BEGIN)
            .expect("the script marks its configuration")
            + BEGIN.len();
        let end = start + text[start..].find("drop-in: end").unwrap();
        // Up to the end marker's line.
        let block = &text[start..=start + text[start..end].rfind('\n').unwrap()];
        assert!(
            readme.contains(block),
            "README.md's simulator section should show {script}'s configuration:\n{block}"
        );
    }
}
