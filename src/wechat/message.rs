//! Notifications, client half: the four send APIs and the three template lists. Which
//! token to use and what to do about an error is the outbox's business (`crate::outbox`).

use super::types::{
    BizSendRequest, FormSendRequest, PrivateTemplate, PrivateTemplateList, SendResponse,
    SubscribeSendRequest, SubscribeTemplate, SubscribeTemplateList, TemplateSendRequest,
    WxopenTemplateList,
};
use super::{AppCredentials, WechatClient, WechatError, join};

/// WeChat's page size for the legacy template list.
const WXOPEN_PAGE: usize = 20;

impl WechatClient {
    /// `POST /cgi-bin/message/template/send`: an Official Account template message.
    pub async fn send_template(
        &self,
        app: &AppCredentials,
        access_token: &str,
        req: &TemplateSendRequest,
    ) -> Result<SendResponse, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/message/template/send");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(req);
        self.call("cgi-bin/message/template/send", req).await
    }

    /// `POST /cgi-bin/message/subscribe/send`: a mini-program subscribe message.
    pub async fn send_subscribe(
        &self,
        app: &AppCredentials,
        access_token: &str,
        req: &SubscribeSendRequest,
    ) -> Result<SendResponse, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/message/subscribe/send");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(req);
        self.call("cgi-bin/message/subscribe/send", req).await
    }

    /// `POST /cgi-bin/message/subscribe/bizsend`: an Official Account subscribe notification.
    pub async fn send_oa_subscribe(
        &self,
        app: &AppCredentials,
        access_token: &str,
        req: &BizSendRequest,
    ) -> Result<SendResponse, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/message/subscribe/bizsend");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(req);
        self.call("cgi-bin/message/subscribe/bizsend", req).await
    }

    /// `POST /cgi-bin/message/wxopen/template/send`: a legacy template message.
    pub async fn send_form(
        &self,
        app: &AppCredentials,
        access_token: &str,
        req: &FormSendRequest,
    ) -> Result<SendResponse, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/message/wxopen/template/send");
        let req = self
            .http
            .post(url)
            .query(&[("access_token", access_token)])
            .json(req);
        self.call("cgi-bin/message/wxopen/template/send", req).await
    }

    /// `GET /cgi-bin/template/get_all_private_template`: the Official Account's templates.
    pub async fn private_templates(
        &self,
        app: &AppCredentials,
        access_token: &str,
    ) -> Result<Vec<PrivateTemplate>, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/template/get_all_private_template");
        let req = self.http.get(url).query(&[("access_token", access_token)]);
        let list: PrivateTemplateList = self
            .call("cgi-bin/template/get_all_private_template", req)
            .await?;
        Ok(list.template_list)
    }

    /// `GET /wxaapi/newtmpl/gettemplate`: the subscribe templates of a mini-program, or of
    /// an Official Account (its subscribe notifications: the same route and shape).
    pub async fn subscribe_templates(
        &self,
        app: &AppCredentials,
        access_token: &str,
    ) -> Result<Vec<SubscribeTemplate>, WechatError> {
        let url = join(&app.api_base, "/wxaapi/newtmpl/gettemplate");
        let req = self.http.get(url).query(&[("access_token", access_token)]);
        let list: SubscribeTemplateList = self.call("wxaapi/newtmpl/gettemplate", req).await?;
        Ok(list.data)
    }

    /// `POST /cgi-bin/wxopen/template/list`, every page: the legacy mini-program templates.
    pub async fn wxopen_templates(
        &self,
        app: &AppCredentials,
        access_token: &str,
    ) -> Result<Vec<PrivateTemplate>, WechatError> {
        let url = join(&app.api_base, "/cgi-bin/wxopen/template/list");
        let mut all = Vec::new();
        // WeChat keeps at most 25 templates; the bound only guards against a looping server.
        for page in 0..10 {
            let req = self
                .http
                .post(&url)
                .query(&[("access_token", access_token)])
                .json(&serde_json::json!({"offset": page * WXOPEN_PAGE, "count": WXOPEN_PAGE}));
            let list: WxopenTemplateList = self.call("cgi-bin/wxopen/template/list", req).await?;
            let n = list.list.len();
            all.extend(list.list);
            if n < WXOPEN_PAGE {
                break;
            }
        }
        Ok(all)
    }
}
