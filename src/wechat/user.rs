//! Follower info of an Official Account, client half and wire types (the simulator serves
//! the same types): `cgi-bin/user/info`, `user/info/batchget` (at most 100 a call) and
//! `user/get` (the follower list, 10,000 openids a page).

use super::{AppCredentials, WechatClient, WechatError, join};
use crate::domain::OpenId;
use serde::{Deserialize, Serialize};

/// WeChat takes at most this many openids in one `user/info/batchget`.
pub const BATCHGET_MAX: usize = 100;
/// WeChat's page of `user/get`.
pub const FOLLOWERS_PAGE: usize = 10_000;

/// One person as `user/info` (and each item of `batchget`) gives them. For someone who
/// does not follow, WeChat answers `{"subscribe":0,"openid"}` only ("拉取不到其余信息").
/// Nickname and avatar are no longer given (since 2021-12-27).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FollowerInfo {
    /// 1: follows the account; 0: does not.
    pub subscribe: i64,
    pub openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When the person (last) followed, Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_time: Option<i64>,
    /// Only when the account is bound to an Open Platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remark: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groupid: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tagid_list: Option<Vec<i64>>,
    /// `ADD_SCENE_SEARCH`, `ADD_SCENE_QR_CODE`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe_scene: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_scene: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_scene_str: Option<String>,
}

impl FollowerInfo {
    pub fn follows(&self) -> bool {
        self.subscribe == 1
    }
}

/// `POST user/info/batchget` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchGetRequest {
    pub user_list: Vec<BatchGetItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchGetItem {
    pub openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
}

/// `user/info/batchget` answer, in the order asked.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchGetResponse {
    pub user_info_list: Vec<FollowerInfo>,
}

/// One page of `user/get`. WeChat names the page's last openid in `next_openid` even on
/// the last full page (wechatpy notes it); the page after the last has `count` 0, no
/// `data` and an empty `next_openid`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowerPage {
    /// Every follower of the account.
    pub total: i64,
    /// Openids on this page.
    pub count: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<FollowerOpenids>,
    #[serde(default)]
    pub next_openid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FollowerOpenids {
    pub openid: Vec<String>,
}

impl FollowerPage {
    pub fn openids(&self) -> &[String] {
        self.data.as_ref().map_or(&[], |d| d.openid.as_slice())
    }
}

impl WechatClient {
    /// `GET cgi-bin/user/info`: one person's follower info.
    pub async fn user_info(
        &self,
        app: &AppCredentials,
        access_token: &str,
        openid: &OpenId,
    ) -> Result<FollowerInfo, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/user/info");
        let req = self.http.get(url).query(&[
            ("access_token", access_token),
            ("openid", openid.as_str()),
            ("lang", "zh_CN"),
        ]);
        self.call("cgi-bin/user/info", req).await
    }

    /// `POST cgi-bin/user/info/batchget` for at most [`BATCHGET_MAX`] openids; more is
    /// refused here, before WeChat is asked.
    pub async fn user_info_batch(
        &self,
        app: &AppCredentials,
        access_token: &str,
        openids: &[OpenId],
    ) -> Result<Vec<FollowerInfo>, WechatError> {
        const ENDPOINT: &str = "cgi-bin/user/info/batchget";
        if openids.len() > BATCHGET_MAX {
            return Err(WechatError::Protocol {
                endpoint: ENDPOINT,
                detail: format!(
                    "{} openids asked at once; WeChat takes at most {BATCHGET_MAX}",
                    openids.len()
                ),
            });
        }
        let body = BatchGetRequest {
            user_list: openids
                .iter()
                .map(|o| BatchGetItem {
                    openid: o.as_str().to_owned(),
                    lang: Some("zh_CN".to_owned()),
                })
                .collect(),
        };
        let url = join(&app.api_base, "/cgi-bin/user/info/batchget");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(&body);
        let answer: BatchGetResponse = self.call(ENDPOINT, req).await?;
        Ok(answer.user_info_list)
    }

    /// `GET cgi-bin/user/get`: the page of followers after `next_openid` (from the start
    /// when empty).
    pub async fn followers_page(
        &self,
        app: &AppCredentials,
        access_token: &str,
        next_openid: &str,
    ) -> Result<FollowerPage, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/user/get");
        let mut query = vec![("access_token", access_token)];
        if !next_openid.is_empty() {
            query.push(("next_openid", next_openid));
        }
        let req = self.http.get(url).query(&query);
        self.call("cgi-bin/user/get", req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wechat_documented_answers_parse() {
        // The documentation's example, and a non-follower's two fields.
        let info: FollowerInfo = serde_json::from_str(
            r#"{"subscribe":1,"openid":"o6_bmjrPTlm6_2sgVt7hMZOPfL2M","language":"zh_CN","subscribe_time":1382694957,"unionid":"o6_bmasdasdsad6_2sgVt7hMZOPfL","remark":"","groupid":0,"tagid_list":[128,2],"subscribe_scene":"ADD_SCENE_QR_CODE","qr_scene":98765,"qr_scene_str":""}"#,
        )
        .unwrap();
        assert!(info.follows());
        assert_eq!(info.subscribe_time, Some(1_382_694_957));
        assert_eq!(
            info.unionid.as_deref(),
            Some("o6_bmasdasdsad6_2sgVt7hMZOPfL")
        );
        let gone: FollowerInfo =
            serde_json::from_str(r#"{"subscribe":0,"openid":"otvxTs_JZ6SEiP0imdhpi50fuSZg"}"#)
                .unwrap();
        assert!(!gone.follows());
        assert_eq!(gone.unionid, None);

        let last: FollowerPage =
            serde_json::from_str(r#"{"total":2,"count":0,"next_openid":""}"#).unwrap();
        assert!(last.openids().is_empty());
        let page: FollowerPage = serde_json::from_str(
            r#"{"total":2,"count":2,"data":{"openid":["OPENID1","OPENID2"]},"next_openid":"OPENID2"}"#,
        )
        .unwrap();
        assert_eq!(page.openids(), ["OPENID1", "OPENID2"]);
    }
}
