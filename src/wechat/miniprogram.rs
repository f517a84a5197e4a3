//! Mini-program login: `GET /sns/jscode2session` turns the code of `wx.login` into the
//! person's openid, unionid (when the mini-program is on an Open Platform account) and
//! session key.

use super::types::Code2SessionResponse;
use super::{AppCredentials, WechatClient, WechatError, join};
use secrecy::ExposeSecret;

impl WechatClient {
    /// Exchanges a single-use `wx.login` code. Errors worth telling apart: 40029 (invalid or
    /// expired code), 40163 (already used), 45011 (100 logins per person per minute), 40226
    /// (high-risk person blocked).
    pub async fn jscode2session(
        &self,
        app: &AppCredentials,
        js_code: &str,
    ) -> Result<Code2SessionResponse, WechatError> {
        let req = self
            .http
            .get(join(&app.api_base, "/sns/jscode2session"))
            .query(&[
                ("appid", app.appid.as_str()),
                ("secret", app.secret.expose_secret()),
                ("js_code", js_code),
                ("grant_type", "authorization_code"),
            ]);
        self.call("sns/jscode2session", req).await
    }
}
