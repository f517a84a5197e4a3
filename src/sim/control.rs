//! `/_sim/` control routes: register apps, create people, move the clock, read stats.

use super::{Sim, SimApp};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/_sim/apps", post(add_app).get(list_apps))
        .route("/_sim/people", post(add_person).get(list_people))
        .route("/_sim/people/{id}", get(get_person).post(change_person))
        .route("/_sim/clock/advance", post(advance_clock))
        .route("/_sim/stats", get(stats))
        .route("/_sim/faults", post(set_faults))
}

async fn add_app(State(sim): State<Sim>, Json(app): Json<SimApp>) -> (StatusCode, Json<Value>) {
    let appid = app.appid.clone();
    sim.add_app(app);
    (StatusCode::CREATED, Json(json!({ "appid": appid })))
}

async fn list_apps(State(sim): State<Sim>) -> Json<Value> {
    let apps: Vec<Value> = sim
        .lock()
        .apps
        .values()
        .map(|a| json!({"appid": a.appid, "kind": a.kind, "auth_domain": a.auth_domain, "unionid_group": a.unionid_group, "push_url": a.push_url, "push_mode": a.push_mode()}))
        .collect();
    Json(json!({ "apps": apps }))
}

#[derive(Deserialize, Default)]
struct NewPerson {
    nickname: Option<String>,
    #[serde(default)]
    snapshot: bool,
}

async fn add_person(
    State(sim): State<Sim>,
    body: Option<Json<NewPerson>>,
) -> (StatusCode, Json<Value>) {
    let req = body.map(|Json(b)| b).unwrap_or_default();
    let p = sim.add_person(req.nickname, req.snapshot);
    (StatusCode::CREATED, Json(describe(&sim, &p.id)))
}

async fn list_people(State(sim): State<Sim>) -> Json<Value> {
    let people: Vec<Value> = sim.people().iter().map(|p| describe(&sim, &p.id)).collect();
    Json(json!({ "people": people }))
}

async fn get_person(
    State(sim): State<Sim>,
    Path(id): Path<String>,
) -> Result<Json<Value>, StatusCode> {
    if sim.person(&id).is_none() {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(describe(&sim, &id)))
}

/// A new nickname or avatar: what `sns/userinfo` answers from now on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonChange {
    nickname: Option<String>,
    headimgurl: Option<String>,
}

async fn change_person(
    State(sim): State<Sim>,
    Path(id): Path<String>,
    Json(change): Json<PersonChange>,
) -> Result<Json<Value>, StatusCode> {
    if !sim.change_person(&id, change.nickname, change.headimgurl) {
        return Err(StatusCode::NOT_FOUND);
    }
    Ok(Json(describe(&sim, &id)))
}

/// A person with their openid (and unionid) in every registered app.
fn describe(sim: &Sim, id: &str) -> Value {
    let Some(p) = sim.person(id) else {
        return Value::Null;
    };
    let appids: Vec<String> = sim.lock().apps.keys().cloned().collect();
    let mut openids = serde_json::Map::new();
    let mut unionids = serde_json::Map::new();
    for appid in appids {
        openids.insert(appid.clone(), json!(sim.openid_of(&appid, id)));
        if let Some(u) = sim.unionid_of(&appid, id) {
            unionids.insert(appid, json!(u));
        }
    }
    json!({
        "id": p.id, "nickname": p.nickname, "headimgurl": p.headimgurl, "snapshot": p.snapshot,
        "blocked": sim.is_blocked(id),
        "openids": openids, "unionids": unionids,
    })
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance_clock(State(sim): State<Sim>, Json(a): Json<Advance>) -> Json<Value> {
    sim.clock().advance(a.seconds);
    Json(json!({ "now": sim.clock().now() }))
}

async fn stats(State(sim): State<Sim>) -> Json<Value> {
    Json(json!(sim.stats()))
}

async fn set_faults(State(sim): State<Sim>, Json(f): Json<super::faults::Faults>) -> Json<Value> {
    sim.set_faults(f.clone());
    Json(json!(f))
}
