//! `/_sim/` control routes of the notification half: templates, following, what a person
//! accepted in a mini-program or an Official Account page, form ids, pages, and what was
//! received.

use super::Sim;
use super::message::{FORM_ID_TTL_SECS, SimFormId, Subscription};
use super::templates::SimTemplate;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/_sim/templates", post(add_template))
        .route("/_sim/following", post(set_following))
        .route("/_sim/subscriptions", post(accept_subscription))
        .route("/_sim/form-ids", post(mint_form_id))
        .route("/_sim/pages", post(set_pages))
        .route("/_sim/messages", get(messages))
}

type Refusal = (StatusCode, Json<Value>);

fn refuse(message: &str) -> Refusal {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message })))
}

fn known(sim: &Sim, appid: &str, person: &str) -> Result<(), Refusal> {
    if !sim.lock().apps.contains_key(appid) {
        return Err(refuse("unknown appid"));
    }
    if sim.person(person).is_none() {
        return Err(refuse("unknown person"));
    }
    Ok(())
}

#[derive(Deserialize)]
struct NewTemplate {
    appid: String,
    /// `template` (Official Account), `subscribe` or `form`.
    kind: String,
    template_id: Option<String>,
    title: String,
    content: String,
    #[serde(default)]
    example: String,
}

async fn add_template(
    State(sim): State<Sim>,
    Json(t): Json<NewTemplate>,
) -> Result<(StatusCode, Json<Value>), Refusal> {
    if !matches!(t.kind.as_str(), "template" | "subscribe" | "form") {
        return Err(refuse("kind is template, subscribe or form"));
    }
    if !sim.lock().apps.contains_key(&t.appid) {
        return Err(refuse("unknown appid"));
    }
    let id = t
        .template_id
        .unwrap_or_else(|| crate::domain::random_alphanumeric(43));
    sim.add_template(
        &t.appid,
        SimTemplate {
            template_id: id.clone(),
            kind: t.kind,
            title: t.title,
            content: t.content,
            example: t.example,
        },
    );
    Ok((StatusCode::CREATED, Json(json!({ "template_id": id }))))
}

#[derive(Deserialize)]
struct Following {
    appid: String,
    person: String,
    following: bool,
    #[serde(default)]
    blocked: bool,
}

/// Whether a person follows an Official Account (43004 when not) or blocked it (43019).
async fn set_following(
    State(sim): State<Sim>,
    Json(f): Json<Following>,
) -> Result<Json<Value>, Refusal> {
    known(&sim, &f.appid, &f.person)?;
    sim.set_following(&f.appid, &f.person, f.following, f.blocked);
    Ok(Json(
        json!({ "following": f.following, "blocked": f.blocked }),
    ))
}

impl Sim {
    pub fn set_following(&self, appid: &str, person: &str, following: bool, blocked: bool) {
        let key = (appid.to_owned(), person.to_owned());
        let mut st = self.lock();
        let m = &mut st.messages;
        if following {
            m.not_following.remove(&key);
        } else {
            m.not_following.insert(key.clone());
        }
        if blocked {
            m.blocked.insert(key);
        } else {
            m.blocked.remove(&key);
        }
        st.followers.version += 1;
    }

    /// The person behind `openid` accepts `count` more sends (or, with `long_term`, a
    /// long-term subscription) of a subscribe template; false when no person has it.
    pub fn accept_subscription_by_openid(
        &self,
        appid: &str,
        openid: &str,
        template_id: &str,
        count: u64,
        long_term: bool,
    ) -> bool {
        match self.person_by_openid(appid, openid) {
            Some(person) => {
                self.accept_subscription(appid, &person, template_id, count, long_term, false);
                true
            }
            None => false,
        }
    }

    /// The person accepts (or, with `revoke`, turns off) a subscribe template.
    pub fn accept_subscription(
        &self,
        appid: &str,
        person: &str,
        template_id: &str,
        count: u64,
        long_term: bool,
        revoke: bool,
    ) -> (u64, bool) {
        let mut st = self.lock();
        let s = st
            .messages
            .subscriptions
            .entry((appid.to_owned(), person.to_owned(), template_id.to_owned()))
            .or_default();
        if revoke {
            *s = Subscription::default();
        } else {
            s.remaining += count;
            s.long_term |= long_term;
        }
        (s.remaining, s.long_term)
    }
}

#[derive(Deserialize)]
struct Acceptance {
    appid: String,
    person: String,
    template_id: String,
    #[serde(default = "one")]
    count: u64,
    #[serde(default)]
    long_term: bool,
    #[serde(default)]
    revoke: bool,
}

fn one() -> u64 {
    1
}

/// What `wx.requestSubscribeMessage` (or an Official Account page's `wx-open-subscribe`)
/// records when the person taps "allow"; `revoke` turns it off without a push.
async fn accept_subscription(
    State(sim): State<Sim>,
    Json(a): Json<Acceptance>,
) -> Result<(StatusCode, Json<Value>), Refusal> {
    known(&sim, &a.appid, &a.person)?;
    let (remaining, long_term) = sim.accept_subscription(
        &a.appid,
        &a.person,
        &a.template_id,
        a.count,
        a.long_term,
        a.revoke,
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({ "remaining": remaining, "long_term": long_term })),
    ))
}

#[derive(Deserialize)]
struct NewFormId {
    appid: String,
    person: String,
    /// `form` (one send) or `prepay` (three sends).
    kind: String,
    /// WeChat registers a prepay_id a moment after the payment: 41028 until then.
    #[serde(default)]
    register_delay_secs: i64,
}

async fn mint_form_id(
    State(sim): State<Sim>,
    Json(f): Json<NewFormId>,
) -> Result<(StatusCode, Json<Value>), Refusal> {
    known(&sim, &f.appid, &f.person)?;
    let uses_left = match f.kind.as_str() {
        "form" => 1,
        "prepay" => 3,
        _ => return Err(refuse("kind is form or prepay")),
    };
    let now = sim.clock().now();
    let id = format!("{}{}", f.kind, crate::domain::random_alphanumeric(24));
    sim.lock().messages.form_ids.insert(
        id.clone(),
        SimFormId {
            appid: f.appid,
            person: f.person,
            uses_left,
            registered_at: now + f.register_delay_secs,
            expires_at: now + FORM_ID_TTL_SECS,
        },
    );
    Ok((StatusCode::CREATED, Json(json!({ "form_id": id }))))
}

#[derive(Deserialize)]
struct Pages {
    appid: String,
    pages: Vec<String>,
}

/// The mini-program's pages: a send naming another page answers 41030.
async fn set_pages(State(sim): State<Sim>, Json(p): Json<Pages>) -> Json<Value> {
    let n = p.pages.len();
    sim.lock()
        .messages
        .pages
        .insert(p.appid, p.pages.into_iter().collect());
    Json(json!({ "pages": n }))
}

#[derive(Deserialize)]
struct Filter {
    appid: Option<String>,
    touser: Option<String>,
    channel: Option<String>,
}

/// Everything the simulator accepted for delivery, oldest first.
async fn messages(State(sim): State<Sim>, Query(f): Query<Filter>) -> Json<Value> {
    let list: Vec<_> = sim
        .received_messages()
        .into_iter()
        .filter(|m| f.appid.as_ref().is_none_or(|a| *a == m.appid))
        .filter(|m| f.touser.as_ref().is_none_or(|t| *t == m.touser))
        .filter(|m| f.channel.as_ref().is_none_or(|c| c == m.channel))
        .collect();
    Json(json!({ "messages": list }))
}
