//! The sandbox in this process (no configuration but `sandbox = true` or a `[sandbox]`
//! section, its simulator under `/sim`), and reading its pages: the formatted JSON they
//! show, the cards' defaults, a message followed to `delivered`.

use super::browser::{action_href, location, outcome, unescape};
use super::sim::SimClient;
use reqwest::StatusCode;
use serde_json::Value;
use wxlink::app::App;
use wxlink::clock::Clock;
use wxlink::config::Config;

/// A sandbox in this process, on its own SQLite file.
pub struct Sandbox {
    pub base: String,
    pub api_key: String,
    pub ctx: wxlink::context::Ctx,
    /// The simulator's control routes, under `/sim`.
    pub sim: SimClient,
    _dir: Option<tempfile::TempDir>,
}

pub async fn sandbox() -> Sandbox {
    sandbox_in(tempfile::tempdir().unwrap()).await
}

pub async fn sandbox_in(dir: tempfile::TempDir) -> Sandbox {
    let mut sb = sandbox_at(dir.path()).await;
    sb._dir = Some(dir);
    sb
}

pub async fn sandbox_at(path: &std::path::Path) -> Sandbox {
    sandbox_with(path, "sandbox = true").await
}

/// A sandbox with `sandbox_toml` (`sandbox = true` or a `[sandbox]` section, last).
pub async fn sandbox_with(path: &std::path::Path, sandbox_toml: &str) -> Sandbox {
    let config = Config::from_toml_str(&format!(
        "listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n{sandbox_toml}\n",
        path.join("sb.db").display()
    ))
    .unwrap();
    let app = App::build(config, Clock::system()).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let api_key = app.sandbox().unwrap().api_key.clone();
    let ctx = app.context().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Sandbox {
        sim: SimClient::new(format!("{base}/sim")),
        base,
        api_key,
        ctx,
        _dir: None,
    }
}

/// Every formatted JSON block of a sandbox page, parsed.
pub fn json_blocks(body: &str) -> Vec<Value> {
    body.split("<pre class=\"json\">")
        .skip(1)
        .map(|b| {
            let text = unescape(b.split("</pre>").next().unwrap());
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        })
        .collect()
}

/// The default value of the input `id` on a page.
pub fn input_value(body: &str, id: &str) -> String {
    let at = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no input {id}"));
    let rest = &body[at..];
    let value = rest.split("value=\"").nth(1).unwrap();
    unescape(value.split('"').next().unwrap())
}

/// Follows redirects from `url` to the page they end on; its final URL and answer.
pub async fn follow(b: &reqwest::Client, base: &str, url: &str) -> (String, reqwest::Response) {
    let mut url = url.to_owned();
    for _ in 0..8 {
        if url.starts_with('/') {
            url = format!("{base}{url}");
        }
        let r = b.get(&url).send().await.unwrap();
        if !r.status().is_redirection() {
            return (url, r);
        }
        url = location(&r);
    }
    panic!("too many redirects from {url}");
}

/// Opens a message's page (after a send's 303) until it says delivered: every reload
/// shows the message as formatted JSON; returns the last.
pub async fn delivered(b: &reqwest::Client, base: &str, page: &str) -> Value {
    assert!(page.starts_with("/sandbox/messages/"), "{page}");
    for _ in 0..100 {
        let (status, got, body) =
            outcome(b.get(format!("{base}{page}")).send().await.unwrap()).await;
        assert_eq!(
            (status, got.as_str()),
            (StatusCode::OK, "message"),
            "{body}"
        );
        assert_eq!(action_href(&body, "back").as_deref(), Some("/"));
        let shown = json_blocks(&body).remove(0);
        let following = body.contains("http-equiv=\"refresh\"");
        // A customer-service message gets no delivery report: `sent` is its end.
        let done = shown["status"] == "delivered"
            || (shown["channel"] == "custom" && shown["status"] == "sent");
        if done {
            assert!(!following, "a settled message's page stops reloading");
            return shown;
        }
        assert!(
            following,
            "the page reloads itself while {}",
            shown["status"]
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the message at {page} was not delivered within 5 s");
}

/// Walks card 4 (mini-program login, then the link) for `user`; the result page's body.
pub async fn mp_login(b: &reqwest::Client, sb: &Sandbox, user: &str) -> String {
    let r = b
        .post(format!("{}/sandbox/mp-login", sb.base))
        .form(&[("user_id", user)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let (_, r) = follow(b, &sb.base, &location(&r)).await;
    let (status, got, body) = outcome(r).await;
    assert_eq!((status, got.as_str()), (StatusCode::OK, "linked"), "{body}");
    body
}
