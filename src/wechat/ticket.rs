//! The JS-SDK tickets, client half: `cgi-bin/ticket/getticket`. Who fetches, when and how
//! often is the ticket manager's business (`crate::ticket`).

use super::types::TicketResponse;
use super::{AppCredentials, WechatClient, WechatError, join};
use crate::domain::TicketKind;

impl WechatClient {
    /// `GET /cgi-bin/ticket/getticket?access_token=&type=`: a ticket for 7200 s, rationed
    /// per day; 40001/42001 mean the access token is bad, not the ticket.
    pub async fn get_ticket(
        &self,
        app: &AppCredentials,
        access_token: &str,
        kind: TicketKind,
    ) -> Result<TicketResponse, WechatError> {
        let req = self
            .http
            .get(join(&app.api_base, "/cgi-bin/ticket/getticket"))
            .query(&[("access_token", access_token), ("type", kind.as_str())]);
        self.call("cgi-bin/ticket/getticket", req).await
    }
}

/// The `wx.config` signature: SHA-1 of `jsapi_ticket=..&noncestr=..&timestamp=..&url=..`
/// (the four names in ASCII order, values as they are, not URL-encoded), lowercase hex.
pub fn js_sdk_signature(ticket: &str, noncestr: &str, timestamp: i64, url: &str) -> String {
    use sha1::{Digest, Sha1};
    let plain =
        format!("jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}");
    hex::encode(Sha1::digest(plain.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::js_sdk_signature;

    /// WeChat's published example (JS-SDK documentation, appendix 1), byte for byte.
    #[test]
    fn the_published_signature_vector() {
        assert_eq!(
            js_sdk_signature(
                "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
                "Wm3WZYTPz0wzccnW",
                1414587457,
                "http://mp.weixin.qq.com?params=value",
            ),
            "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
        );
    }
}
