//! The global access token, client half: fetch it the classic way or the stable way.
//! Who fetches, when, and how often is the token manager's business (`crate::token`).

use super::types::{AccessTokenResponse, StableTokenRequest};
use super::{AppCredentials, WechatClient, WechatError, join};
use secrecy::ExposeSecret;
use serde::Deserialize;

impl WechatClient {
    /// `GET /cgi-bin/token`: every call issues a new token; the previous one dies 5 minutes later.
    pub async fn fetch_classic_token(
        &self,
        app: &AppCredentials,
    ) -> Result<AccessTokenResponse, WechatError> {
        let req = self
            .http
            .get(join(&app.api_base, "/cgi-bin/token"))
            .query(&[
                ("grant_type", "client_credential"),
                ("appid", app.appid.as_str()),
                ("secret", app.secret.expose_secret()),
            ]);
        self.call("cgi-bin/token", req).await
    }

    /// `POST /cgi-bin/stable_token`: the same token while valid; `force` replaces it (rationed).
    pub async fn fetch_stable_token(
        &self,
        app: &AppCredentials,
        force: bool,
    ) -> Result<AccessTokenResponse, WechatError> {
        let body = StableTokenRequest {
            grant_type: "client_credential",
            appid: app.appid.as_str(),
            secret: app.secret.expose_secret(),
            force_refresh: force,
        };
        let req = self
            .http
            .post(join(&app.api_base, "/cgi-bin/stable_token"))
            .json(&body);
        self.call("cgi-bin/stable_token", req).await
    }

    /// `GET /cgi-bin/get_api_domain_ip`: WeChat's server addresses; a cheap token check.
    pub async fn api_domain_ip(
        &self,
        app: &AppCredentials,
        access_token: &str,
    ) -> Result<Vec<String>, WechatError> {
        #[derive(Deserialize)]
        struct IpList {
            ip_list: Vec<String>,
        }
        let req = self
            .http
            .get(join(&app.api_base, "/cgi-bin/get_api_domain_ip"))
            .query(&[("access_token", access_token)]);
        Ok(self
            .call::<IpList>("cgi-bin/get_api_domain_ip", req)
            .await?
            .ip_list)
    }
}
