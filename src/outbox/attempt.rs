//! One attempt at sending one message, and what its answer means: sent, retry later, hold
//! the app's queue, rejected for good, or failed.

use super::Outbox;
use crate::clock::Timestamp;
use crate::domain::{Channel, DataItem, MessageData, Payload};
use crate::store::{Claimed, FormIdKind, Learned, Outcome};
use crate::token::CallError;
use crate::wechat::types::{
    BizSendRequest, FormSendRequest, MiniProgramLink, SendResponse, SubscribeSendRequest,
    TemplateSendRequest, WireDataItem,
};
use crate::wechat::{ErrCode, ErrorClass, WechatError};
use rand::RngExt;
use std::collections::BTreeMap;
use std::time::Duration;

/// A prepay_id WeChat has not registered yet answers 41028 for a while after the payment.
const PREPAY_GRACE_SECS: i64 = 120;
/// Short delayed retries of a fresh prepay_id before the next id is tried.
const PREPAY_RETRIES: u32 = 3;
/// Most form ids one attempt goes through before giving up on the rest.
const FORM_IDS_PER_ATTEMPT: usize = 10;

impl Outbox {
    /// Sends `m` once (paced per app) and says how it went.
    pub(super) async fn attempt(&self, m: &Claimed) -> Outcome {
        let s = &self.inner;
        let Some(app) = s.apps.get(&m.app) else {
            return Outcome::Failed {
                reason: format!("app {} is no longer configured", m.app),
            };
        };
        if let Some(pacer) = s.pacers.get(&m.app) {
            pacer.until_ready().await;
        }
        let creds = &app.wechat;
        let w = &s.wechat;
        let result = match m.channel {
            Channel::Template => {
                let req = TemplateSendRequest {
                    touser: m.openid.to_string(),
                    template_id: template_of(m),
                    url: m.payload.url.as_ref().map(|u| u.as_str().to_owned()),
                    miniprogram: m.payload.miniprogram.as_ref().map(|p| MiniProgramLink {
                        appid: p.appid.to_string(),
                        pagepath: p.pagepath.as_str().to_owned(),
                    }),
                    // The same id on every attempt: WeChat drops a repeat within 10 minutes.
                    client_msg_id: Some(match &m.idempotency_key {
                        Some(k) => k.to_string(),
                        None => m.id.to_string(),
                    }),
                    data: wire_data(&m.payload.data, true),
                };
                let req = &req;
                s.tokens
                    .call(
                        &m.app,
                        |t| async move { w.send_template(creds, &t, req).await },
                    )
                    .await
            }
            Channel::Subscribe => {
                let req = subscribe_request(m);
                let req = &req;
                s.tokens
                    .call(
                        &m.app,
                        |t| async move { w.send_subscribe(creds, &t, req).await },
                    )
                    .await
            }
            Channel::OaSubscribe => {
                let req = biz_send_request(m);
                let req = &req;
                s.tokens
                    .call(&m.app, |t| async move {
                        w.send_oa_subscribe(creds, &t, req).await
                    })
                    .await
            }
            Channel::Form => return self.attempt_form(m).await,
            Channel::Custom => {
                let Some(req) = super::custom::custom_request(m) else {
                    return Outcome::Failed {
                        reason: "the stored message has no customer-service content".into(),
                    };
                };
                let req = &req;
                s.tokens
                    .call(
                        &m.app,
                        |t| async move { w.send_custom(creds, &t, req).await },
                    )
                    .await
            }
        };
        self.judge(m, result).await
    }

    /// Legacy messages: spend the usable form id that expires first; a used-up id is
    /// marked and the next one tried; a fresh prepay_id gets a few short delayed retries.
    async fn attempt_form(&self, m: &Claimed) -> Outcome {
        let s = &self.inner;
        let app = &s.apps[&m.app];
        let creds = &app.wechat;
        let w = &s.wechat;
        for _ in 0..FORM_IDS_PER_ATTEMPT {
            let now = s.clock.timestamp();
            let form = match s.store.next_form_id(&m.app, &m.openid, now).await {
                Ok(Some(f)) => f,
                Ok(None) => {
                    return Outcome::Failed {
                        reason: "no usable form_id or prepay_id left for this person".into(),
                    };
                }
                Err(e) => return self.retry_or_fail(m, None, format!("store: {e}")),
            };
            let req = FormSendRequest {
                touser: m.openid.to_string(),
                template_id: template_of(m),
                page: m.payload.page.as_ref().map(|p| p.as_str().to_owned()),
                form_id: form.form_id.clone(),
                data: wire_data(&m.payload.data, false),
                emphasis_keyword: m.payload.emphasis_keyword.clone(),
            };
            let req = &req;
            let mut early = 0;
            let result = loop {
                let r = s
                    .tokens
                    .call(&m.app, |t| async move { w.send_form(creds, &t, req).await })
                    .await;
                let fresh_prepay = form.kind == FormIdKind::Prepay
                    && s.clock.now() - form.created_at.secs() < PREPAY_GRACE_SECS;
                if code_of(&r) == Some(ErrCode::InvalidFormId)
                    && fresh_prepay
                    && early < PREPAY_RETRIES
                {
                    tokio::time::sleep(self.backoff(early as i64 + 1)).await;
                    early += 1;
                    continue;
                }
                break r;
            };
            let spent = match code_of(&result) {
                Some(ErrCode::FormIdUsed | ErrCode::InvalidFormId) => {
                    s.store.spend_form_id(&m.app, &form.form_id).await
                }
                _ if result.is_ok() => s.store.use_form_id(&m.app, &form.form_id).await,
                _ => return self.judge(m, result).await,
            };
            if let Err(e) = spent {
                tracing::warn!(error = %e, "outbox: cannot record a form id's use");
            }
            if result.is_ok() {
                return self.judge(m, result).await;
            }
        }
        Outcome::Failed {
            reason: format!("{FORM_IDS_PER_ATTEMPT} form ids in a row were refused"),
        }
    }

    /// What WeChat's answer means for the message.
    async fn judge(&self, m: &Claimed, r: Result<SendResponse, CallError>) -> Outcome {
        let e = match r {
            Ok(resp) => return Outcome::Sent { msgid: resp.msgid },
            Err(e) => e,
        };
        let (code, errmsg) = match &e {
            CallError::Wechat(WechatError::Api { code, errmsg, .. }) => (*code, errmsg.clone()),
            // Timeouts, dropped connections, a proxy's error page, no token right now.
            other => return self.retry_or_fail(m, None, other.to_string()),
        };
        match code.class() {
            ErrorClass::Retryable | ErrorClass::TokenInvalid => {
                self.retry_or_fail(m, Some(code.code()), format!("{code}: {errmsg}"))
            }
            ErrorClass::DailyQuota => self.hold(m, &errmsg).await,
            ErrorClass::Permanent => Outcome::Rejected {
                errcode: code.code(),
                learned: match code {
                    ErrCode::NoSubscription => Some(Learned::NoSubscriptionLeft),
                    ErrCode::NotFollowing => Some(Learned::NotFollowing),
                    _ => None,
                },
                errmsg: if errmsg.is_empty() {
                    code.description().to_owned()
                } else {
                    errmsg
                },
            },
        }
    }

    /// 45009: nothing more goes through for this app and channel until the quota resets at
    /// midnight Beijing time; the message waits in the queue, its attempt not counted.
    async fn hold(&self, m: &Claimed, errmsg: &str) -> Outcome {
        let s = &self.inner;
        let until = Timestamp::from_secs(crate::clock::next_beijing_midnight(s.clock.now()));
        let reason = format!(
            "WeChat's daily quota for {} messages of app {} is spent (45009 {errmsg}); held until the quota resets at midnight Beijing time",
            m.channel, m.app
        );
        if let Err(e) = s
            .store
            .hold_channel(&m.app, m.channel, until, &reason)
            .await
        {
            tracing::warn!(error = %e, "outbox: cannot record the quota hold");
        }
        tracing::warn!(app = %m.app, channel = %m.channel, until_ms = until.millis(), "daily quota reached; holding the queue");
        Outcome::Held { until, reason }
    }

    fn retry_or_fail(&self, m: &Claimed, errcode: Option<i64>, reason: String) -> Outcome {
        let s = &self.inner;
        if m.attempt >= s.settings.max_attempts {
            return Outcome::Failed {
                reason: format!("gave up after {} attempts; last: {reason}", m.attempt),
            };
        }
        let at = s
            .clock
            .timestamp()
            .plus_millis(self.backoff(m.attempt).as_millis() as i64);
        Outcome::Retry {
            at,
            errcode,
            reason,
        }
    }

    /// Exponential backoff with jitter: between half and all of `base * 2^(attempt-1)`.
    fn backoff(&self, attempt: i64) -> Duration {
        let s = &self.inner.settings;
        let exp = s
            .backoff_base_ms
            .saturating_mul(1i64 << (attempt - 1).clamp(0, 30));
        let full = exp.min(s.backoff_max_ms).max(1);
        let ms = rand::rng().random_range(full / 2..=full);
        Duration::from_millis(ms as u64)
    }
}

/// The claimed message's template id as WeChat takes it (every channel but `custom` has one).
fn template_of(m: &Claimed) -> String {
    m.template_id
        .as_ref()
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn code_of(r: &Result<SendResponse, CallError>) -> Option<ErrCode> {
    match r {
        Err(CallError::Wechat(e)) => e.code(),
        _ => None,
    }
}

fn subscribe_request(m: &Claimed) -> SubscribeSendRequest {
    let p: &Payload = &m.payload;
    SubscribeSendRequest {
        touser: m.openid.to_string(),
        template_id: template_of(m),
        page: p.page.as_ref().map(|x| x.as_str().to_owned()),
        data: wire_data(&p.data, false),
        miniprogram_state: p.miniprogram_state.map(|x| x.as_str().to_owned()),
        lang: p.lang.map(|x| x.as_str().to_owned()),
    }
}

/// bizsend's `page` is the web page the card opens: the message's `url`.
fn biz_send_request(m: &Claimed) -> BizSendRequest {
    let p: &Payload = &m.payload;
    BizSendRequest {
        touser: m.openid.to_string(),
        template_id: template_of(m),
        page: p.url.as_ref().map(|u| u.as_str().to_owned()),
        miniprogram: p.miniprogram.as_ref().map(|x| MiniProgramLink {
            appid: x.appid.to_string(),
            pagepath: x.pagepath.as_str().to_owned(),
        }),
        data: wire_data(&p.data, false),
    }
}

/// The data as WeChat takes it; only template messages carry colours.
fn wire_data(data: &MessageData, colors: bool) -> BTreeMap<String, WireDataItem> {
    data.iter()
        .map(|(k, DataItem { value, color })| {
            (
                k.to_owned(),
                WireDataItem {
                    value: value.as_str().to_owned(),
                    color: color
                        .as_ref()
                        .filter(|_| colors)
                        .map(|c| c.as_str().to_owned()),
                },
            )
        })
        .collect()
}
