//! The checks a message passes before it is queued, each refusal a precise 4xx: the
//! request's shape, the app, the person's identity, muted categories, the template and its
//! data keys, the field rules, a remaining subscription or form id, the idempotency key.

use super::Outbox;
use crate::config::AppConfig;
use crate::domain::{
    CardUrl, Category, Channel, IdempotencyKey, Lang, MessageData, MessageId, MiniProgramState,
    MiniProgramTarget, OpenId, PagePath, Payload, RawDataValue, TemplateId, UserId, WxAppId,
};
use crate::error::ApiError;
use crate::store::{Enqueued, NewMessage};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// `POST /api/v1/users/{user_id}/messages`, as sent.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"channel": "template", "app": "oa", "template_id": "sandbox_order_shipped",
    "data": {"keyword1": "339208499", "keyword2": {"value": "顺丰", "color": "#173177"}}}))]
pub struct SendRequest {
    /// `template` (Official Account), `subscribe` (mini-program) or `form` (legacy
    /// mini-program template with a form_id / prepay_id); `auto` takes an `AutoRequest`.
    #[schema(example = "template")]
    pub channel: String,
    /// May be left out when exactly one configured app fits the channel.
    #[serde(default)]
    pub app: Option<String>,
    pub template_id: String,
    /// The template's `{{name.DATA}}` keys, each a string or `{"value","color"}`.
    pub data: BTreeMap<String, RawDataValue>,
    /// Template only: the page the card opens.
    #[serde(default)]
    pub url: Option<String>,
    /// Template only: a mini-program page the card opens instead.
    #[serde(default)]
    pub miniprogram: Option<RawMiniProgram>,
    /// Subscribe and form: the mini-program page, e.g. `pages/order?id=1`.
    #[serde(default)]
    pub page: Option<String>,
    /// Subscribe only: `developer`, `trial` or `formal`.
    #[serde(default)]
    pub miniprogram_state: Option<String>,
    /// Subscribe only: `zh_CN`, `en_US`, `zh_HK` or `zh_TW`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Form only, e.g. `keyword1.DATA`.
    #[serde(default)]
    pub emphasis_keyword: Option<String>,
    /// Refused with 409 `muted` when the user muted it.
    #[serde(default)]
    pub category: Option<String>,
    /// Shorten over-long text fields (with `…`) instead of refusing them.
    #[serde(default)]
    pub truncate: bool,
}

/// The mini-program a template message's card opens.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMiniProgram {
    pub appid: String,
    #[serde(default)]
    pub pagepath: String,
}

/// The answer to an accepted request.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub id: MessageId,
    pub channel: Channel,
    pub status: crate::domain::MessageStatus,
    /// The same request came before with this idempotency key: this is that message.
    pub replayed: bool,
}

/// A request whose shape is right, before anything is looked up.
struct Parsed<'a> {
    channel: Channel,
    app: &'a AppConfig,
    template_id: TemplateId,
    category: Option<Category>,
    payload: Payload,
}

impl Outbox {
    /// Checks a send request and stores it. Nothing is written unless every check passed.
    pub async fn accept(
        &self,
        caller: &str,
        user: &UserId,
        key: Option<&IdempotencyKey>,
        req: &SendRequest,
        request_hash: &str,
    ) -> Result<Accepted, ApiError> {
        self.accept_noted(caller, user, key, req, request_hash, None)
            .await
    }

    /// [`Outbox::accept`], with a fact for the message's first history line.
    pub(super) async fn accept_noted(
        &self,
        caller: &str,
        user: &UserId,
        key: Option<&IdempotencyKey>,
        req: &SendRequest,
        request_hash: &str,
        note: Option<String>,
    ) -> Result<Accepted, ApiError> {
        let s = &self.inner;
        let p = self.parse(req)?;
        if let Some(key) = key
            && let Some(existing) = s.store.message_by_key(caller, key).await?
        {
            return replay(existing, request_hash);
        }
        let openid = s
            .store
            .user_identity(user, &p.app.id)
            .await?
            .map(|i| i.openid)
            .ok_or_else(|| {
                ApiError::not_found(
                    "no_identity",
                    format!(
                        "user {user} has no identity in app {} (bind one, or link it through OAuth or a mini-program login)",
                        p.app.id
                    ),
                )
                .with_details(json!({ "app": p.app.id }))
            })?;
        if let Some(c) = &p.category
            && s.store.is_muted(user, c).await?
        {
            return Err(
                ApiError::conflict("muted", format!("user {user} muted the category {c}"))
                    .with_details(json!({ "category": c })),
            );
        }
        self.check_template(&p).await?;
        if p.channel == Channel::Form
            && s.store
                .next_form_id(&p.app.id, &openid, s.clock.now())
                .await?
                .is_none()
        {
            return Err(ApiError::conflict(
                "no_form_id",
                format!(
                    "user {user} has no usable form_id or prepay_id in app {} (each lasts 7 days)",
                    p.app.id
                ),
            ));
        }
        self.store_message(caller, user, key, request_hash, &p, &openid, note)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_message(
        &self,
        caller: &str,
        user: &UserId,
        key: Option<&IdempotencyKey>,
        request_hash: &str,
        p: &Parsed<'_>,
        openid: &OpenId,
        note: Option<String>,
    ) -> Result<Accepted, ApiError> {
        let s = &self.inner;
        let now_ms = s.clock.now_ms();
        let id = MessageId::generate(now_ms);
        let truncated = p.payload.data.truncated_fields();
        let shortened = (!truncated.is_empty())
            .then(|| format!("shortened to fit the field rules: {}", truncated.join(", ")));
        let note = match (note, shortened) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
        let outcome = self
            .enqueue(NewMessage {
                id: id.clone(),
                caller: caller.to_owned(),
                idempotency_key: key.cloned(),
                request_hash: request_hash.to_owned(),
                user_id: user.clone(),
                app: p.app.id.clone(),
                channel: p.channel,
                openid: openid.clone(),
                template_id: p.template_id.clone(),
                category: p.category.clone(),
                payload: p.payload.clone(),
                note,
            })
            .await?;
        match outcome {
            Enqueued::New => {
                crate::metrics::message(p.channel, "queued");
                self.wake();
                Ok(Accepted {
                    id,
                    channel: p.channel,
                    status: crate::domain::MessageStatus::Queued,
                    replayed: false,
                })
            }
            Enqueued::KeyTaken => {
                let key = key.expect("only a keyed message can find its key taken");
                let existing = s.store.message_by_key(caller, key).await?.ok_or_else(|| {
                    ApiError::Unavailable {
                        code: "idempotency_race",
                        message:
                            "the message stored under this Idempotency-Key vanished; try again"
                                .into(),
                    }
                })?;
                replay(existing, request_hash)
            }
            Enqueued::NoSubscription => Err(ApiError::conflict(
                "no_subscription",
                format!(
                    "user {user} has no remaining subscription to template {} in app {} (record the person's acceptance with POST /api/v1/users/{user}/subscriptions)",
                    p.template_id, p.app.id
                ),
            )),
        }
    }

    /// The request's shape: channel, app, template id, channel fields, data rules.
    fn parse<'a>(&'a self, req: &SendRequest) -> Result<Parsed<'a>, ApiError> {
        let channel =
            Channel::parse(&req.channel).map_err(|e| ApiError::invalid("invalid_channel", e.0))?;
        let app = self.app_for(channel, req.app.as_deref())?;
        let template_id = TemplateId::parse(&req.template_id)
            .map_err(|e| ApiError::invalid("invalid_template_id", e.0))?;
        let category = req
            .category
            .as_deref()
            .map(Category::parse)
            .transpose()
            .map_err(|e| ApiError::invalid("invalid_category", e.0))?;
        let not_for = |field: &str, present: bool| -> Result<(), ApiError> {
            if present {
                return Err(ApiError::invalid(
                    "field_not_for_channel",
                    format!("{field} does not apply to {channel} messages"),
                )
                .with_details(json!({ "field": field })));
            }
            Ok(())
        };
        let template = channel == Channel::Template;
        not_for("url", !template && req.url.is_some())?;
        not_for("miniprogram", !template && req.miniprogram.is_some())?;
        not_for("page", template && req.page.is_some())?;
        let subscribe = channel == Channel::Subscribe;
        not_for(
            "miniprogram_state",
            !subscribe && req.miniprogram_state.is_some(),
        )?;
        not_for("lang", !subscribe && req.lang.is_some())?;
        not_for(
            "emphasis_keyword",
            channel != Channel::Form && req.emphasis_keyword.is_some(),
        )?;

        let bad = |field: &'static str| {
            move |e: crate::domain::ParseError| {
                ApiError::invalid("invalid_body", format!("{field}: {e}"))
                    .with_details(json!({ "field": field }))
            }
        };
        let url = optional(req.url.as_deref(), CardUrl::parse, "url")?;
        let miniprogram = req
            .miniprogram
            .as_ref()
            .map(|m| -> Result<_, ApiError> {
                Ok(MiniProgramTarget {
                    appid: WxAppId::parse(&m.appid).map_err(bad("miniprogram.appid"))?,
                    pagepath: PagePath::parse(&m.pagepath).map_err(bad("miniprogram.pagepath"))?,
                })
            })
            .transpose()?;
        let page = optional(req.page.as_deref(), PagePath::parse, "page")?;
        let miniprogram_state = optional(
            req.miniprogram_state.as_deref(),
            MiniProgramState::parse,
            "miniprogram_state",
        )?;
        let lang = optional(req.lang.as_deref(), Lang::parse, "lang")?;
        let data = MessageData::parse(&req.data, req.truncate).map_err(|e| {
            let mut details = json!({ "field": e.field() });
            if let crate::domain::DataError::Field(f) = &e {
                details["rule"] = json!(f.rule);
            }
            ApiError::invalid("invalid_data", e.to_string()).with_details(details)
        })?;
        if let Some(k) = &req.emphasis_keyword
            && !k
                .strip_suffix(".DATA")
                .is_some_and(|name| data.keys().any(|d| d == name))
        {
            return Err(ApiError::invalid(
                "invalid_body",
                "emphasis_keyword must name a data key as `key.DATA`",
            ));
        }
        Ok(Parsed {
            channel,
            app,
            template_id,
            category,
            payload: Payload {
                data,
                url,
                miniprogram,
                page,
                miniprogram_state,
                lang,
                emphasis_keyword: req.emphasis_keyword.clone(),
            },
        })
    }

    /// The named app (which must send on this channel), or the only app that can.
    pub(crate) fn app_for(
        &self,
        channel: Channel,
        name: Option<&str>,
    ) -> Result<&AppConfig, ApiError> {
        let apps = &self.inner.apps;
        let kind = channel.app_kind();
        if let Some(name) = name {
            let app = crate::domain::AppId::parse(name)
                .ok()
                .and_then(|id| apps.get(&id))
                .ok_or_else(|| {
                    ApiError::not_found(
                        "unknown_app",
                        format!(
                            "no app named {:?} is configured",
                            name.chars().take(40).collect::<String>()
                        ),
                    )
                })?;
            if app.kind != kind {
                return Err(ApiError::invalid(
                    "app_channel_mismatch",
                    format!(
                        "app {} is a {}; {channel} messages are sent by a {} app",
                        app.id,
                        app.kind.as_str(),
                        kind.as_str()
                    ),
                ));
            }
            return Ok(app);
        }
        let mut fits: Vec<&AppConfig> = apps.values().filter(|a| a.kind == kind).collect();
        fits.sort_by(|a, b| a.id.cmp(&b.id));
        match fits.as_slice() {
            [one] => Ok(one),
            [] => Err(ApiError::invalid(
                "no_app_for_channel",
                format!(
                    "no {} app is configured to send {channel} messages",
                    kind.as_str()
                ),
            )),
            several => Err(ApiError::invalid(
                "app_required",
                format!(
                    "several apps can send {channel} messages ({}): name one in \"app\"",
                    several
                        .iter()
                        .map(|a| a.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The template exists in the app for this channel and the data has exactly its keys
    /// (`first` and `remark` may be left out: WeChat dropped them in 2023).
    async fn check_template(&self, p: &Parsed<'_>) -> Result<(), ApiError> {
        let found = self
            .templates()
            .find(p.app, p.channel, &p.template_id)
            .await
            .map_err(|e| ApiError::Unavailable {
                code: "templates_unavailable",
                message: format!(
                    "cannot check template {} against app {}'s template list: {e}",
                    p.template_id, p.app.id
                ),
            })?;
        let Some(t) = found else {
            return Err(ApiError::not_found(
                "unknown_template",
                format!(
                    "app {} has no {} template {}",
                    p.app.id, p.channel, p.template_id
                ),
            ));
        };
        let unknown: Vec<&str> = p
            .payload
            .data
            .keys()
            .filter(|k| !t.placeholders.iter().any(|n| n == k))
            .collect();
        let missing: Vec<&str> = t
            .placeholders
            .iter()
            .map(String::as_str)
            .filter(|n| !matches!(*n, "first" | "remark"))
            .filter(|n| !p.payload.data.keys().any(|k| k == *n))
            .collect();
        if unknown.is_empty() && missing.is_empty() {
            return Ok(());
        }
        Err(ApiError::invalid(
            "data_keys_mismatch",
            format!(
                "the data keys do not match template {} ({:?}): expected {}{}{}",
                p.template_id,
                t.title,
                t.placeholders.join(", "),
                if unknown.is_empty() {
                    String::new()
                } else {
                    format!("; not in the template: {}", unknown.join(", "))
                },
                if missing.is_empty() {
                    String::new()
                } else {
                    format!("; missing: {}", missing.join(", "))
                },
            ),
        )
        .with_details(
            json!({ "unknown": unknown, "missing": missing, "expected": t.placeholders }),
        ))
    }
}

/// An optional field through its parser; a refusal names the field.
fn optional<T>(
    value: Option<&str>,
    parse: fn(&str) -> Result<T, crate::domain::ParseError>,
    field: &'static str,
) -> Result<Option<T>, ApiError> {
    value.map(parse).transpose().map_err(|e| {
        ApiError::invalid("invalid_body", format!("{field}: {e}"))
            .with_details(json!({ "field": field }))
    })
}

pub(super) fn replay(
    existing: crate::store::Message,
    request_hash: &str,
) -> Result<Accepted, ApiError> {
    if existing.request_hash != request_hash {
        return Err(key_conflict(&existing.id));
    }
    Ok(Accepted {
        id: existing.id,
        channel: existing.channel,
        status: existing.status,
        replayed: true,
    })
}

fn key_conflict(existing_id: &MessageId) -> ApiError {
    ApiError::conflict(
        "idempotency_conflict",
        format!("this Idempotency-Key was used for a different request (message {existing_id})"),
    )
    .with_details(json!({ "existing_id": existing_id }))
}
