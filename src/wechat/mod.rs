//! A thin typed client for the WeChat server APIs, over configurable base URLs so that the
//! sandbox and the tests point it at the simulator.

pub mod crypto;
pub mod custom;
mod errcode;
pub mod message;
pub mod miniprogram;
pub mod oauth;
pub mod ticket;
pub mod token;
pub mod types;
pub mod user;

pub use errcode::{ErrCode, ErrorClass};

use crate::metrics::CallResult;
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use std::time::Duration;
use types::ErrorBody;

/// What the client needs to know about one WeChat app.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub appid: crate::domain::WxAppId,
    pub secret: SecretString,
    /// `https://api.weixin.qq.com` in production; no trailing slash.
    pub api_base: String,
    /// `https://open.weixin.qq.com` in production; no trailing slash.
    pub open_base: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    #[error("WeChat {endpoint} answered {code}: {errmsg}{}", rid.as_ref().map(|r| format!(" (rid {r})")).unwrap_or_default())]
    Api {
        endpoint: &'static str,
        code: ErrCode,
        /// WeChat's message without its ` rid: ...` suffix.
        errmsg: String,
        /// The request id WeChat appends to every error message: what its support asks for.
        rid: Option<String>,
    },
    /// The URL is stripped from the source: it carries the secret or a code.
    #[error("could not reach WeChat {endpoint}: {source}")]
    Transport {
        endpoint: &'static str,
        source: reqwest::Error,
    },
    #[error("unexpected answer from WeChat {endpoint}: {detail}")]
    Protocol {
        endpoint: &'static str,
        detail: String,
    },
}

impl WechatError {
    /// The WeChat error code, when WeChat answered with one.
    pub fn code(&self) -> Option<ErrCode> {
        match self {
            Self::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// Shared HTTP client; cheap to clone.
#[derive(Clone, Debug)]
pub struct WechatClient {
    http: reqwest::Client,
}

impl WechatClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("wxlink/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { http })
    }

    /// Sends a request and turns WeChat's `{"errcode":N}` convention into errors; every
    /// call is counted and timed here (`wxlink_wechat_requests_total`).
    async fn call<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, WechatError> {
        let started = std::time::Instant::now();
        let result = self.call_untimed(endpoint, req).await;
        let counted = match &result {
            Ok(_) => CallResult::Ok,
            Err(WechatError::Api { code, .. }) => CallResult::Errcode(code.code()),
            Err(WechatError::Transport { .. }) => CallResult::Transport,
            Err(WechatError::Protocol { .. }) => CallResult::Protocol,
        };
        crate::metrics::wechat_call(endpoint, counted, started.elapsed());
        result
    }

    async fn call_untimed<T: DeserializeOwned>(
        &self,
        endpoint: &'static str,
        req: reqwest::RequestBuilder,
    ) -> Result<T, WechatError> {
        let transport = |source: reqwest::Error| WechatError::Transport {
            endpoint,
            source: source.without_url(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(transport)?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| WechatError::Protocol {
                endpoint,
                detail: format!("HTTP {status}, body is not JSON ({e})"),
            })?;
        if let Ok(err) = serde_json::from_value::<ErrorBody>(value.clone())
            && err.errcode != 0
        {
            let (errmsg, rid) = split_rid(&err.errmsg);
            return Err(WechatError::Api {
                endpoint,
                code: ErrCode::from_code(err.errcode),
                errmsg: errmsg.to_owned(),
                rid: rid.map(str::to_owned),
            });
        }
        serde_json::from_value(value).map_err(|e| WechatError::Protocol {
            endpoint,
            detail: format!("HTTP {status}, unexpected fields ({e})"),
        })
    }
}

/// Splits WeChat's `"... rid: 6571f5a6-1c2d3e4f-5a6b7c8d"` into the message and the id.
fn split_rid(errmsg: &str) -> (&str, Option<&str>) {
    match errmsg.rsplit_once(" rid: ") {
        Some((msg, rid)) if !rid.is_empty() && !rid.contains(' ') => (msg.trim_end(), Some(rid)),
        _ => (errmsg, None),
    }
}

fn join(base: &str, path: &str) -> String {
    format!("{}{}", base.trim_end_matches('/'), path)
}

#[cfg(test)]
mod tests {
    use super::split_rid;

    #[test]
    fn the_request_id_is_split_off_the_message() {
        assert_eq!(
            split_rid(
                "argument invalid! data.thing1.value is empty rid: 6571f5a6-1c2d3e4f-5a6b7c8d"
            ),
            (
                "argument invalid! data.thing1.value is empty",
                Some("6571f5a6-1c2d3e4f-5a6b7c8d")
            )
        );
        assert_eq!(split_rid("invalid code"), ("invalid code", None));
        assert_eq!(
            split_rid("a rid: with spaces"),
            ("a rid: with spaces", None)
        );
    }
}
