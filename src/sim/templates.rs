//! The simulator's templates: the store of each app's templates, and their management API
//! (the Official Account's private templates: list, add from the industry library, delete;
//! subscribe templates of mini-programs and Official Accounts; legacy templates).

use super::token::{TokenQuery, caller_app};
use super::{Sim, WxBody, body, wx_error};
use crate::wechat::types::{ErrorBody, PrivateTemplate, SubscribeTemplate};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::BTreeMap;

/// A template of one app: `template` (Official Account), `subscribe` (a mini-program's
/// subscribe message or an Official Account's subscribe notification) or `form` (legacy).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SimTemplate {
    pub template_id: String,
    pub kind: String,
    pub title: String,
    pub content: String,
    #[serde(default)]
    pub example: String,
}

/// appid -> template id -> template
pub(super) type TemplateState = BTreeMap<String, BTreeMap<String, SimTemplate>>;

impl Sim {
    pub(super) fn template(&self, appid: &str, kind: &str, id: &str) -> Option<SimTemplate> {
        self.lock()
            .templates
            .get(appid)
            .and_then(|t| t.get(id))
            .filter(|t| t.kind == kind)
            .cloned()
    }

    pub fn add_template(&self, appid: &str, t: SimTemplate) {
        self.lock()
            .templates
            .entry(appid.to_owned())
            .or_default()
            .insert(t.template_id.clone(), t);
    }

    pub(super) fn templates_of(&self, appid: &str, kind: &str) -> Vec<SimTemplate> {
        self.lock()
            .templates
            .get(appid)
            .map(|t| t.values().filter(|t| t.kind == kind).cloned().collect())
            .unwrap_or_default()
    }
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route(
            "/cgi-bin/template/get_all_private_template",
            get(private_templates),
        )
        .route("/cgi-bin/template/api_add_template", post(add_template))
        .route("/cgi-bin/template/del_private_template", post(del_template))
        .route("/wxaapi/newtmpl/gettemplate", get(subscribe_templates))
        .route("/cgi-bin/wxopen/template/list", post(wxopen_templates))
}

fn private_template(t: SimTemplate) -> PrivateTemplate {
    PrivateTemplate {
        template_id: t.template_id,
        title: t.title,
        primary_industry: "IT科技".into(),
        deputy_industry: "互联网|电子商务".into(),
        content: t.content,
        example: t.example,
    }
}

async fn private_templates(State(sim): State<Sim>, Query(q): Query<TokenQuery>) -> Response {
    sim.count("template_list_calls");
    match caller_app(&sim, &q, "official_account") {
        Ok(appid) => {
            let list: Vec<PrivateTemplate> = sim
                .templates_of(&appid, "template")
                .into_iter()
                .map(private_template)
                .collect();
            Json(json!({ "template_list": list })).into_response()
        }
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct AddTemplate {
    template_id_short: String,
    #[serde(default)]
    keyword_name_list: Vec<String>,
}

/// Adds an industry template to the account: its content lists the keywords.
async fn add_template(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<AddTemplate>,
) -> Response {
    let result = (|| {
        let appid = caller_app(&sim, &q, "official_account")?;
        let req = body(b)?;
        let content = req
            .keyword_name_list
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name}：{{{{keyword{}.DATA}}}}", i + 1))
            .collect::<Vec<_>>()
            .join("\n");
        let id = crate::domain::random_alphanumeric(43);
        sim.add_template(
            &appid,
            SimTemplate {
                template_id: id.clone(),
                kind: "template".into(),
                title: req.template_id_short,
                content,
                example: String::new(),
            },
        );
        Ok(id)
    })();
    match result {
        Ok(id) => Json(json!({ "errcode": 0, "errmsg": "ok", "template_id": id })).into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct DelTemplate {
    template_id: String,
}

async fn del_template(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<DelTemplate>,
) -> Response {
    let result = (|| {
        let appid = caller_app(&sim, &q, "official_account")?;
        let req = body(b)?;
        let removed = sim
            .lock()
            .templates
            .get_mut(&appid)
            .and_then(|t| t.remove(&req.template_id));
        removed.ok_or_else(|| wx_error(40037, "invalid template_id"))
    })();
    match result {
        Ok(_) => Json(ErrorBody::new(0, "ok")).into_response(),
        Err(e) => e,
    }
}

/// A mini-program's subscribe templates, or an Official Account's subscribe-notification
/// templates: one route for both, as at WeChat.
async fn subscribe_templates(State(sim): State<Sim>, Query(q): Query<TokenQuery>) -> Response {
    sim.count("template_list_calls");
    let appid =
        caller_app(&sim, &q, "mini_program").or_else(|_| caller_app(&sim, &q, "official_account"));
    match appid {
        Ok(appid) => {
            let data: Vec<SubscribeTemplate> = sim
                .templates_of(&appid, "subscribe")
                .into_iter()
                .map(|t| SubscribeTemplate {
                    pri_tmpl_id: t.template_id,
                    title: t.title,
                    content: t.content,
                    example: t.example,
                    kind: 2,
                })
                .collect();
            Json(json!({ "errcode": 0, "errmsg": "ok", "data": data })).into_response()
        }
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct Page {
    #[serde(default)]
    offset: usize,
    #[serde(default)]
    count: usize,
}

async fn wxopen_templates(
    State(sim): State<Sim>,
    Query(q): Query<TokenQuery>,
    b: WxBody<Page>,
) -> Response {
    sim.count("template_list_calls");
    let result = (|| {
        let appid = caller_app(&sim, &q, "mini_program")?;
        let page = body(b)?;
        if page.count == 0 || page.count > 20 {
            return Err(wx_error(47003, "argument invalid! count"));
        }
        Ok(sim
            .templates_of(&appid, "form")
            .into_iter()
            .skip(page.offset)
            .take(page.count)
            .map(private_template)
            .collect::<Vec<_>>())
    })();
    match result {
        Ok(list) => Json(json!({ "errcode": 0, "errmsg": "ok", "list": list })).into_response(),
        Err(e) => e,
    }
}
