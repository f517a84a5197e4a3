//! Follower info as WeChat serves it, over the simulator's people and their follow state
//! (everyone follows every Official Account until they leave): `cgi-bin/user/info`,
//! `user/info/batchget` (at most 100, 40003 for an openid that is not the app's) and
//! `user/get` (pages of `page_size`, 10,000 as WeChat's). A unionid is given when the app
//! is in a unionid group (bound to an Open Platform account) and the person has one.
//!
//! Control routes: `POST /_sim/followers/bulk {"appid","count","with_unionid_ratio"}`
//! creates many followers at once (100,000 in about a second), `POST
//! /_sim/followers/settings {"page_size"}` shrinks `user/get`'s page so paging is exercised.

use super::{Person, Sim, WxBody, body, wx_error};
use crate::domain::hash_token;
use crate::wechat::user::{
    BATCHGET_MAX, BatchGetRequest, BatchGetResponse, FOLLOWERS_PAGE, FollowerInfo, FollowerOpenids,
    FollowerPage,
};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The follow time of someone who followed before the simulator heard of it (2020-01-01).
const FOLLOWED_LONG_AGO: i64 = 1_577_836_800;

#[derive(Default)]
pub struct FollowerState {
    /// (appid, person) -> when they (last) followed.
    pub(super) since: HashMap<(String, String), i64>,
    /// People outside the Open Platform: no unionid anywhere.
    pub(super) no_unionid: HashSet<String>,
    /// `user/get`'s page; WeChat's 10,000 when unset.
    page_size: Option<usize>,
    /// Bumped whenever who follows changes, so the follower lists are rebuilt.
    pub(super) version: u64,
    /// appid -> the app's followers in `user/get` order, for the version they were built at.
    lists: HashMap<String, (u64, usize, Arc<FollowerList>)>,
}

/// An app's followers in a stable order, and where each openid stands.
struct FollowerList {
    openids: Vec<String>,
    people: Vec<String>,
    index: HashMap<String, usize>,
}

pub fn router() -> Router<Sim> {
    Router::new()
        .route("/cgi-bin/user/info", get(user_info))
        .route("/cgi-bin/user/info/batchget", post(batchget))
        .route("/cgi-bin/user/get", get(user_get))
}

pub fn control_router() -> Router<Sim> {
    Router::new()
        .route("/_sim/followers/bulk", post(bulk))
        .route("/_sim/followers/settings", post(settings))
}

/// The openid of a (non-snapshot) person in an app: [`Sim::openid_of`] without its look-up.
pub(super) fn plain_openid(appid: &str, person: &str) -> String {
    format!(
        "o{}",
        &hash_token(&format!("openid|{appid}|{person}"))[..27]
    )
}

impl Sim {
    /// Someone just followed: their follow time, and the follower lists rebuilt.
    pub(super) fn followed(&self, appid: &str, person: &str) {
        let now = self.clock.now();
        let mut st = self.lock();
        st.followers
            .since
            .insert((appid.to_owned(), person.to_owned()), now);
        st.followers.version += 1;
    }

    /// The app's followers, built once per change of who follows.
    fn follower_list(&self, appid: &str) -> Arc<FollowerList> {
        let mut st = self.lock();
        let key = (st.followers.version, st.people.len());
        if let Some((v, n, list)) = st.followers.lists.get(appid)
            && (*v, *n) == key
        {
            return list.clone();
        }
        let (mut openids, mut people) = (Vec::new(), Vec::new());
        for p in st.people.values().filter(|p| !p.snapshot) {
            if st
                .messages
                .not_following
                .contains(&(appid.to_owned(), p.id.clone()))
            {
                continue;
            }
            openids.push(plain_openid(appid, &p.id));
            people.push(p.id.clone());
        }
        let index = openids
            .iter()
            .enumerate()
            .map(|(i, o)| (o.clone(), i))
            .collect();
        let list = Arc::new(FollowerList {
            openids,
            people,
            index,
        });
        st.followers
            .lists
            .insert(appid.to_owned(), (key.0, key.1, list.clone()));
        list
    }

    /// What `user/info` says about an openid of the app; `None`: not the app's (40003).
    fn follower_info(
        &self,
        appid: &str,
        openid: &str,
        list: &FollowerList,
    ) -> Option<FollowerInfo> {
        let person = match list.index.get(openid) {
            Some(&i) => list.people[i].clone(),
            None => {
                let person = self.person_by_openid(appid, openid)?;
                if self.person(&person).is_none_or(|p| p.snapshot) {
                    return None;
                }
                // The app's person, but not a follower: WeChat gives nothing more.
                return Some(FollowerInfo {
                    subscribe: 0,
                    openid: openid.to_owned(),
                    language: None,
                    subscribe_time: None,
                    unionid: None,
                    remark: None,
                    groupid: None,
                    tagid_list: None,
                    subscribe_scene: None,
                    qr_scene: None,
                    qr_scene_str: None,
                });
            }
        };
        let since = self
            .lock()
            .followers
            .since
            .get(&(appid.to_owned(), person.clone()))
            .copied()
            .unwrap_or(FOLLOWED_LONG_AGO);
        Some(FollowerInfo {
            subscribe: 1,
            openid: openid.to_owned(),
            language: Some("zh_CN".to_owned()),
            subscribe_time: Some(since),
            unionid: self.unionid_of(appid, &person),
            remark: Some(String::new()),
            groupid: Some(0),
            tagid_list: Some(Vec::new()),
            subscribe_scene: Some("ADD_SCENE_SEARCH".to_owned()),
            qr_scene: Some(0),
            qr_scene_str: Some(String::new()),
        })
    }

    /// Creates `count` followers of the app (following from a second apart, ending now),
    /// the first `with_unionid_ratio` of them with a unionid; returns the first and last
    /// person ids.
    pub fn bulk_followers(
        &self,
        appid: &str,
        count: usize,
        with_unionid_ratio: f64,
    ) -> (String, String) {
        let now = self.clock.now();
        let with_unionid = (count as f64 * with_unionid_ratio.clamp(0.0, 1.0)).round() as usize;
        let mut st = self.lock();
        let (mut first, mut last) = (String::new(), String::new());
        for i in 0..count {
            st.next_id += 1;
            let id = format!("p{}", st.next_id);
            let person = Person {
                nickname: format!("粉丝{}", st.next_id),
                headimgurl: format!("https://thirdwx.qlogo.cn/mmopen/sim/{id}/132"),
                id: id.clone(),
                snapshot: false,
            };
            st.people.insert(id.clone(), person);
            st.followers
                .since
                .insert((appid.to_owned(), id.clone()), now - (count - i) as i64);
            if i >= with_unionid {
                st.followers.no_unionid.insert(id.clone());
            }
            if i == 0 {
                first = id.clone();
            }
            last = id;
        }
        st.followers.version += 1;
        (first, last)
    }
}

#[derive(Deserialize)]
struct InfoQuery {
    access_token: Option<String>,
    #[serde(default)]
    openid: String,
    #[serde(default)]
    next_openid: String,
}

/// The token's app, an Official Account (48001 otherwise).
fn official_account(sim: &Sim, token: Option<&str>) -> Result<String, Response> {
    let appid = sim.check_access_token(token)?;
    if sim.app_kind(&appid) != "official_account" {
        return Err(wx_error(48001, "api unauthorized"));
    }
    Ok(appid)
}

async fn user_info(State(sim): State<Sim>, Query(q): Query<InfoQuery>) -> Response {
    sim.count("user_info_calls");
    let appid = match official_account(&sim, q.access_token.as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    if q.openid.is_empty() {
        return wx_error(41009, "missing openid");
    }
    let list = sim.follower_list(&appid);
    match sim.follower_info(&appid, &q.openid, &list) {
        Some(info) => Json(info).into_response(),
        None => wx_error(40003, "invalid openid"),
    }
}

async fn batchget(
    State(sim): State<Sim>,
    Query(q): Query<InfoQuery>,
    b: WxBody<BatchGetRequest>,
) -> Response {
    sim.count("user_batchget_calls");
    let appid = match official_account(&sim, q.access_token.as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let req = match body(b) {
        Ok(r) => r,
        Err(e) => return e,
    };
    if req.user_list.is_empty() || req.user_list.len() > BATCHGET_MAX {
        return wx_error(47003, "argument invalid! user_list size must be 1 to 100");
    }
    let list = sim.follower_list(&appid);
    let mut infos = Vec::with_capacity(req.user_list.len());
    for item in &req.user_list {
        match sim.follower_info(&appid, &item.openid, &list) {
            Some(info) => infos.push(info),
            None => return wx_error(40003, "invalid openid"),
        }
    }
    Json(BatchGetResponse {
        user_info_list: infos,
    })
    .into_response()
}

async fn user_get(State(sim): State<Sim>, Query(q): Query<InfoQuery>) -> Response {
    sim.count("user_get_calls");
    let appid = match official_account(&sim, q.access_token.as_deref()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let list = sim.follower_list(&appid);
    let start = if q.next_openid.is_empty() {
        0
    } else {
        match list.index.get(&q.next_openid) {
            Some(&i) => i + 1,
            None => return wx_error(40003, "invalid next_openid"),
        }
    };
    let size = sim.lock().followers.page_size.unwrap_or(FOLLOWERS_PAGE);
    let page: Vec<String> = list
        .openids
        .iter()
        .skip(start)
        .take(size)
        .cloned()
        .collect();
    Json(FollowerPage {
        total: list.openids.len() as i64,
        count: page.len() as i64,
        next_openid: page.last().cloned().unwrap_or_default(),
        data: (!page.is_empty()).then_some(FollowerOpenids { openid: page }),
    })
    .into_response()
}

type Refusal = (StatusCode, Json<Value>);

fn refuse(message: &str) -> Refusal {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message })))
}

#[derive(Deserialize)]
struct Bulk {
    #[serde(alias = "app")]
    appid: String,
    count: usize,
    /// The share of the new followers that have a unionid (when the app is in a group).
    #[serde(default = "all")]
    with_unionid_ratio: f64,
}

fn all() -> f64 {
    1.0
}

async fn bulk(State(sim): State<Sim>, Json(b): Json<Bulk>) -> Result<Json<Value>, Refusal> {
    if sim.app_kind(&b.appid) != "official_account" {
        return Err(refuse("appid is not a registered Official Account"));
    }
    if b.count == 0 || b.count > 1_000_000 {
        return Err(refuse("count is 1 to 1000000"));
    }
    if !(0.0..=1.0).contains(&b.with_unionid_ratio) {
        return Err(refuse("with_unionid_ratio is from 0 to 1"));
    }
    let (first, last) = sim.bulk_followers(&b.appid, b.count, b.with_unionid_ratio);
    Ok(Json(
        json!({ "created": b.count, "first_person": first, "last_person": last }),
    ))
}

#[derive(Deserialize)]
struct Settings {
    /// `user/get`'s page size (1 to 10,000); null: WeChat's 10,000.
    page_size: Option<usize>,
}

async fn settings(State(sim): State<Sim>, Json(s): Json<Settings>) -> Result<Json<Value>, Refusal> {
    if let Some(n) = s.page_size
        && !(1..=FOLLOWERS_PAGE).contains(&n)
    {
        return Err(refuse("page_size is 1 to 10000"));
    }
    sim.lock().followers.page_size = s.page_size;
    Ok(Json(
        json!({ "page_size": s.page_size.unwrap_or(FOLLOWERS_PAGE) }),
    ))
}
