//! The simulator answers as WeChat does on the wire, whatever the request: every WeChat route
//! walked with malformed requests gets WeChat's JSON error (HTTP 200, `errcode`, an `errmsg`
//! ending in ` rid: ...`), never a bare 4xx from the framework.

use crate::support::sim::{SimClient, standalone};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

const OA: &str = "wxwireoa0000001";
const MP: &str = "wxwiremp0000002";

/// Every WeChat route of the simulator (the authorize pages aside) and the method it takes.
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/cgi-bin/token"),
    ("POST", "/cgi-bin/stable_token"),
    ("GET", "/cgi-bin/get_api_domain_ip"),
    ("POST", "/cgi-bin/message/template/send"),
    ("POST", "/cgi-bin/message/subscribe/send"),
    ("POST", "/cgi-bin/message/wxopen/template/send"),
    ("GET", "/cgi-bin/template/get_all_private_template"),
    ("POST", "/cgi-bin/template/api_add_template"),
    ("POST", "/cgi-bin/template/del_private_template"),
    ("GET", "/wxaapi/newtmpl/gettemplate"),
    ("POST", "/cgi-bin/wxopen/template/list"),
    ("GET", "/sns/oauth2/access_token"),
    ("GET", "/sns/oauth2/refresh_token"),
    ("GET", "/sns/userinfo"),
    ("GET", "/sns/auth"),
    ("GET", "/sns/jscode2session"),
];

struct Wire {
    sim: SimClient,
    http: Client,
    oa_token: String,
    mp_token: String,
}

impl Wire {
    async fn start() -> Self {
        let (_, sim) = standalone().await;
        sim.add_app(json!({"appid": OA, "secret": "oa-secret", "kind": "official_account"}))
            .await;
        sim.add_app(json!({"appid": MP, "secret": "mp-secret", "kind": "mini_program"}))
            .await;
        let http = Client::new();
        let token = |appid: &'static str, secret: &'static str| {
            let (http, url) = (http.clone(), sim.url("/cgi-bin/token"));
            async move {
                let v: Value = http
                    .get(url)
                    .query(&[
                        ("grant_type", "client_credential"),
                        ("appid", appid),
                        ("secret", secret),
                    ])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["access_token"].as_str().unwrap().to_owned()
            }
        };
        let oa_token = token(OA, "oa-secret").await;
        let mp_token = token(MP, "mp-secret").await;
        Self {
            sim,
            http,
            oa_token,
            mp_token,
        }
    }

    /// The token a route accepts: the mini-program's for its routes, the account's otherwise.
    fn token_for(&self, path: &str) -> &str {
        if path.contains("subscribe") || path.contains("wxopen") || path.contains("wxaapi") {
            &self.mp_token
        } else {
            &self.oa_token
        }
    }

    /// Sends a request and checks WeChat's error shape; returns (errcode, errmsg, content type).
    async fn call(
        &self,
        method: &str,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Option<&str>,
    ) -> (i64, String, String) {
        let mut req = self.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.sim.url(path_and_query),
        );
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        if let Some(b) = body {
            req = req.body(b.to_owned());
        }
        let r = req.send().await.unwrap();
        let what = format!("{method} {path_and_query} {content_type:?} {body:?}");
        assert_eq!(r.status(), StatusCode::OK, "{what}");
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = r.text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: {text}"));
        let code = v["errcode"].as_i64().unwrap_or(0);
        let msg = v["errmsg"].as_str().unwrap_or("").to_owned();
        if code != 0 {
            assert!(has_rid(&msg), "{what}: errmsg without rid: {msg}");
        }
        (code, msg, ct)
    }
}

/// `... rid: 6571f5a6-1c2d3e4f-5a6b7c8d`, as WeChat ends its error messages.
fn has_rid(msg: &str) -> bool {
    msg.rsplit_once(" rid: ").is_some_and(|(_, rid)| {
        let parts: Vec<&str> = rid.split('-').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| p.len() == 8 && p.chars().all(|c| c.is_ascii_hexdigit()))
    })
}

#[tokio::test]
async fn a_wrong_method_is_43002_or_43001_on_every_route() {
    let w = Wire::start().await;
    for (method, path) in ROUTES {
        let (wrong, expected) = if *method == "POST" {
            ("GET", 43002)
        } else {
            ("POST", 43001)
        };
        let (code, _, _) = w.call(wrong, path, None, None).await;
        assert_eq!(code, expected, "{wrong} {path}");
    }
}

#[tokio::test]
async fn post_routes_read_json_whatever_the_content_type_and_refuse_bad_bodies() {
    let w = Wire::start().await;
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "POST") {
        let url = if *path == "/cgi-bin/stable_token" {
            path.to_string()
        } else {
            format!("{path}?access_token={}", w.token_for(path))
        };
        for ct in [None, Some("application/json"), Some("text/plain")] {
            let (code, _, _) = w.call(method, &url, ct, Some("")).await;
            assert_eq!(code, 44002, "empty body to {path} as {ct:?}");
            let (code, _, _) = w.call(method, &url, ct, Some("{\"touser\":")).await;
            assert_eq!(code, 47001, "broken JSON to {path} as {ct:?}");
            let (code, _, _) = w.call(method, &url, ct, Some("\"text\"")).await;
            assert_eq!(code, 47001, "wrong shape to {path} as {ct:?}");
        }
    }
    // A well-formed body is read without a content type: the answer is about its content.
    let stable = json!({"grant_type": "client_credential", "appid": OA, "secret": "oa-secret"});
    let (code, _, _) = w
        .call(
            "POST",
            "/cgi-bin/stable_token",
            None,
            Some(&stable.to_string()),
        )
        .await;
    assert_eq!(code, 0);
    let send = json!({"touser": "onobody", "template_id": "t", "data": {}}).to_string();
    let url = format!("/cgi-bin/message/template/send?access_token={}", w.oa_token);
    let (code, _, _) = w.call("POST", &url, None, Some(&send)).await;
    assert_eq!(code, 40003, "read as JSON without a content type");
    let url = format!(
        "/cgi-bin/message/subscribe/send?access_token={}",
        w.mp_token
    );
    let (code, _, _) = w.call("POST", &url, Some("text/plain"), Some(&send)).await;
    assert_eq!(code, 40003, "read as JSON labelled text/plain");
}

#[tokio::test]
async fn missing_and_repeated_parameters_get_wechat_codes() {
    let w = Wire::start().await;
    let cases: &[(&str, i64)] = &[
        (
            "/cgi-bin/token?grant_type=client_credential&secret=x",
            41002,
        ),
        (
            &format!("/cgi-bin/token?grant_type=client_credential&appid={OA}"),
            41004,
        ),
        (
            &format!("/cgi-bin/token?grant_type=client_credential&appid={OA}&secret=wrong"),
            40125,
        ),
        (
            "/cgi-bin/token?grant_type=client_credential&appid=wxunknown&secret=x",
            40013,
        ),
        (
            "/sns/oauth2/access_token?code=c&grant_type=authorization_code&secret=x",
            41002,
        ),
        (
            &format!("/sns/oauth2/access_token?appid={OA}&code=c&grant_type=authorization_code"),
            41004,
        ),
        (
            &format!(
                "/sns/oauth2/access_token?appid={OA}&secret=oa-secret&grant_type=authorization_code"
            ),
            41008,
        ),
        ("/sns/oauth2/refresh_token?grant_type=refresh_token", 41002),
        (
            &format!("/sns/oauth2/refresh_token?appid={OA}&grant_type=refresh_token"),
            41003,
        ),
        ("/sns/userinfo?openid=o", 41001),
        (
            &format!("/sns/jscode2session?appid={MP}&js_code=c&grant_type=authorization_code"),
            41004,
        ),
        ("/cgi-bin/get_api_domain_ip", 41001),
        ("/cgi-bin/template/get_all_private_template", 41001),
        ("/wxaapi/newtmpl/gettemplate", 41001),
    ];
    for (path, expected) in cases {
        let (code, _, _) = w.call("GET", path, None, None).await;
        assert_eq!(code, *expected, "GET {path}");
    }
    // A repeated parameter: WeChat's shape, whatever the code.
    for path in [
        "/cgi-bin/template/get_all_private_template?access_token=a&access_token=b",
        "/cgi-bin/token?grant_type=client_credential&appid=a&appid=b&secret=x",
    ] {
        let (code, _, _) = w.call("GET", path, None, None).await;
        assert_ne!(code, 0, "GET {path}");
    }
    for (method, path) in ROUTES.iter().filter(|(m, _)| *m == "POST") {
        if *path != "/cgi-bin/stable_token" {
            let (code, _, _) = w.call(method, path, None, Some("{}")).await;
            assert_eq!(code, 41001, "{path} without a token");
        }
    }
    let missing_appid = json!({"grant_type": "client_credential", "secret": "x"}).to_string();
    let (code, _, _) = w
        .call("POST", "/cgi-bin/stable_token", None, Some(&missing_appid))
        .await;
    assert_eq!(code, 41002);
    let missing_secret = json!({"grant_type": "client_credential", "appid": OA}).to_string();
    let (code, _, _) = w
        .call("POST", "/cgi-bin/stable_token", None, Some(&missing_secret))
        .await;
    assert_eq!(code, 41004);
}

#[tokio::test]
async fn sns_routes_answer_json_labelled_text_plain() {
    let w = Wire::start().await;
    for (method, path) in ROUTES.iter().filter(|(_, p)| p.starts_with("/sns/")) {
        let (code, _, ct) = w.call(method, path, None, None).await;
        assert_ne!(code, 0, "{path}");
        assert_eq!(ct, "text/plain", "{path}");
    }
    let (_, _, ct) = w.call("GET", "/cgi-bin/token", None, None).await;
    assert!(ct.starts_with("application/json"), "{ct}");
}

#[tokio::test]
async fn a_state_over_128_bytes_is_refused() {
    let w = Wire::start().await;
    w.sim
        .add_app(json!({"appid": "wxwirestate00003", "secret": "s", "auth_domain": "app.example"}))
        .await;
    let p = w.sim.person("a").await;
    let link = |state: &str| {
        format!(
            "{}/connect/oauth2/authorize?appid=wxwirestate00003&redirect_uri={}&response_type=code&scope=snsapi_base&state={state}",
            w.sim.base(),
            urlencoding::encode("https://app.example/cb")
        )
    };
    let no_redirects = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let open = |state: String| {
        let req = no_redirects
            .get(link(&state))
            .header("x-wxsim-person", p["id"].as_str().unwrap());
        async move { req.send().await.unwrap() }
    };
    let r = open("s".repeat(128)).await;
    assert_eq!(r.status(), StatusCode::FOUND);
    let r = open("s".repeat(129)).await;
    assert_ne!(r.status(), StatusCode::FOUND);
    assert!(r.text().await.unwrap().contains("128"));
}
