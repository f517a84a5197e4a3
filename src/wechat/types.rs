//! Wire types of the WeChat APIs, shared by the client (which parses them) and the simulator
//! (which produces them), so both sides agree on one definition.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `{"errcode","errmsg"}`, present on every error and on some successes.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ErrorBody {
    #[serde(default)]
    pub errcode: i64,
    #[serde(default)]
    pub errmsg: String,
}

impl ErrorBody {
    pub fn new(errcode: i64, errmsg: impl Into<String>) -> Self {
        Self {
            errcode,
            errmsg: errmsg.into(),
        }
    }
}

/// `/cgi-bin/token` and `/cgi-bin/stable_token`.
#[derive(Clone, Serialize, Deserialize)]
pub struct AccessTokenResponse {
    pub access_token: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for AccessTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `GET /cgi-bin/ticket/getticket?type=jsapi|wx_card`: WeChat also sends `errcode: 0` and
/// `errmsg: "ok"` on success, which the error check reads first.
#[derive(Clone, Serialize, Deserialize)]
pub struct TicketResponse {
    pub ticket: String,
    pub expires_in: i64,
}

impl std::fmt::Debug for TicketResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketResponse")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// `POST /cgi-bin/stable_token` body.
#[derive(Serialize, Deserialize)]
pub struct StableTokenRequest<'a> {
    pub grant_type: &'a str,
    pub appid: &'a str,
    pub secret: &'a str,
    pub force_refresh: bool,
}

/// `/sns/oauth2/access_token` and `/sns/oauth2/refresh_token`.
#[derive(Clone, Serialize, Deserialize)]
pub struct WebTokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub refresh_token: String,
    pub openid: String,
    pub scope: String,
    #[serde(
        default,
        skip_serializing_if = "is_zero",
        deserialize_with = "lenient_i64"
    )]
    pub is_snapshotuser: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

impl std::fmt::Debug for WebTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebTokenResponse")
            .field("openid", &self.openid)
            .field("scope", &self.scope)
            .field("is_snapshotuser", &self.is_snapshotuser)
            .finish_non_exhaustive()
    }
}

/// `/sns/jscode2session`: a mini-program login. `session_key` is the person's secret with
/// this mini-program: never returned to a client, never logged (Debug leaves it out).
#[derive(Clone, Serialize, Deserialize)]
pub struct Code2SessionResponse {
    pub openid: String,
    pub session_key: String,
    /// Only when the mini-program is bound to an Open Platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

impl std::fmt::Debug for Code2SessionResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code2SessionResponse")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

/// `/sns/userinfo`. Since 2021 sex is 0 and the region fields are empty; kept anyway.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UserInfo {
    pub openid: String,
    #[serde(default)]
    pub nickname: String,
    #[serde(default, deserialize_with = "lenient_i64")]
    pub sex: i64,
    #[serde(default)]
    pub province: String,
    #[serde(default)]
    pub city: String,
    #[serde(default)]
    pub country: String,
    #[serde(default)]
    pub headimgurl: String,
    #[serde(default)]
    pub privilege: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

/// One value of a message's data as WeChat takes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireDataItem {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

/// Where a template message card opens a mini-program.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiniProgramLink {
    pub appid: String,
    #[serde(default)]
    pub pagepath: String,
}

/// `POST /cgi-bin/message/template/send` (Official Account template message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TemplateSendRequest {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramLink>,
    /// WeChat sends at most one message per (openid, client_msg_id) within 10 minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<String>,
    pub data: BTreeMap<String, WireDataItem>,
}

/// `POST /cgi-bin/message/subscribe/send` (mini-program subscribe message).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeSendRequest {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    pub data: BTreeMap<String, WireDataItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// `POST /cgi-bin/message/subscribe/bizsend` (Official Account subscribe notification).
/// `page` is a web page here (the mini-program channel's `page` is a page path); WeChat
/// answers only `errcode` and `errmsg`, and the msgid comes with `subscribe_msg_sent_event`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BizSendRequest {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub miniprogram: Option<MiniProgramLink>,
    pub data: BTreeMap<String, WireDataItem>,
}

/// `POST /cgi-bin/message/wxopen/template/send` (legacy, with a form_id or prepay_id).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormSendRequest {
    pub touser: String,
    pub template_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    pub form_id: String,
    pub data: BTreeMap<String, WireDataItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emphasis_keyword: Option<String>,
}

/// The answer of a send. `msgid` is a 64-bit integer: never read it as a float.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SendResponse {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_opt_i64"
    )]
    pub msgid: Option<i64>,
}

/// `GET /cgi-bin/template/get_all_private_template`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivateTemplateList {
    #[serde(default)]
    pub template_list: Vec<PrivateTemplate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrivateTemplate {
    pub template_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub primary_industry: String,
    #[serde(default)]
    pub deputy_industry: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
}

/// `GET /wxaapi/newtmpl/gettemplate`: the mini-program's subscribe templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeTemplateList {
    #[serde(default)]
    pub data: Vec<SubscribeTemplate>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscribeTemplate {
    #[serde(rename = "priTmplId")]
    pub pri_tmpl_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
    /// 2 one-time, 3 long-term.
    #[serde(rename = "type", default)]
    pub kind: i64,
}

/// `POST /cgi-bin/wxopen/template/list` `{"offset","count"}`: legacy mini-program templates.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WxopenTemplateList {
    #[serde(default)]
    pub list: Vec<PrivateTemplate>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn lenient_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    lenient_i64(d).map(Some)
}

/// WeChat sends some numbers as strings (wechatpy's fixture has `"sex":"1"`).
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrString {
        Num(i64),
        Str(String),
    }
    Ok(match NumOrString::deserialize(d)? {
        NumOrString::Num(n) => n,
        NumOrString::Str(s) => s.trim().parse().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_parses_string_sex_and_missing_fields() {
        let u: UserInfo =
            serde_json::from_str(r#"{"openid":"o1","nickname":"n","sex":"1","privilege":[]}"#)
                .unwrap();
        assert_eq!(u.sex, 1);
        assert_eq!(u.city, "");
        assert_eq!(u.unionid, None);
    }

    #[test]
    fn web_token_debug_hides_tokens() {
        let t = WebTokenResponse {
            access_token: "SECRET_AT".into(),
            expires_in: 7200,
            refresh_token: "SECRET_RT".into(),
            openid: "o1".into(),
            scope: "snsapi_base".into(),
            is_snapshotuser: 0,
            unionid: None,
        };
        let s = format!("{t:?}");
        assert!(!s.contains("SECRET"));
    }

    #[test]
    fn code2session_debug_hides_the_session_key() {
        let r: Code2SessionResponse =
            serde_json::from_str(r#"{"session_key":"SECRET_SK+w==","openid":"o1","unionid":"u1"}"#)
                .unwrap();
        assert_eq!(r.unionid.as_deref(), Some("u1"));
        let s = format!("{r:?}");
        assert!(!s.contains("SECRET") && s.contains("o1"), "{s}");
    }
}
