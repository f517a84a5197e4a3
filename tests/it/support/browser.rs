//! The browser's side: clients that keep cookies and stop at redirects (inside WeChat or
//! not), the authorization round trip through the simulator, and reading what pages say.

use super::service::TestApp;
use reqwest::header::{HeaderMap, HeaderValue, USER_AGENT};
use reqwest::{Client, Response, StatusCode};

/// The User-Agent of WeChat's in-app browser.
pub const WECHAT_UA: &str =
    "Mozilla/5.0 (iPhone) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.50 NetType/WIFI";

impl TestApp {
    /// Opens an authorize URL of ours in `browser` and lets the simulator answer as
    /// `person` (`consent` is `allow` or `deny` for snsapi_userinfo). Returns the callback
    /// URL WeChat sent the browser to; the callback itself is not requested yet.
    pub async fn through_wechat(
        &self,
        browser: &Client,
        authorize_url: &str,
        person: &str,
        consent: &str,
    ) -> String {
        let r = browser.get(authorize_url).send().await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "authorize should redirect to WeChat: {}",
            r.text().await.unwrap()
        );
        let to_wechat = location(&r);
        assert!(to_wechat.starts_with(self.simulator.base()), "{to_wechat}");
        let r = browser
            .get(&to_wechat)
            .header("x-wxsim-person", person)
            .header("x-wxsim-consent", consent)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::FOUND,
            "simulator should redirect back: {}",
            r.text().await.unwrap()
        );
        let back = location(&r);
        assert!(back.starts_with(&self.base), "{back}");
        back
    }

    /// The whole flow from a full URL (a link ticket's): authorize, WeChat, callback.
    pub async fn sign_in_url(
        &self,
        browser: &Client,
        url: &str,
        person: &str,
        consent: &str,
    ) -> Response {
        let callback = self.through_wechat(browser, url, person, consent).await;
        browser.get(callback).send().await.unwrap()
    }

    /// The whole flow: authorize, WeChat, callback. Returns the callback's response.
    pub async fn sign_in(
        &self,
        browser: &Client,
        authorize_path: &str,
        person: &str,
        consent: &str,
    ) -> Response {
        let callback = self
            .through_wechat(browser, &self.url(authorize_path), person, consent)
            .await;
        browser.get(callback).send().await.unwrap()
    }
}

/// A browser inside WeChat: cookies kept, redirects not followed.
pub fn wechat_browser() -> Client {
    let mut h = HeaderMap::new();
    h.insert(USER_AGENT, HeaderValue::from_static(WECHAT_UA));
    browser(h)
}

/// A desktop browser, outside WeChat.
pub fn desktop_browser() -> Client {
    browser(HeaderMap::new())
}

fn browser(headers: HeaderMap) -> Client {
    Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

pub fn location(r: &Response) -> String {
    r.headers()
        .get("location")
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_owned()
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `data-outcome` a page declares.
pub async fn outcome(r: Response) -> (StatusCode, String, String) {
    let status = r.status();
    let body = r.text().await.unwrap();
    let outcome = body
        .split("data-outcome=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("")
        .to_owned();
    (status, outcome, body)
}

pub fn encode(s: &str) -> String {
    urlencoding::encode(s).into_owned()
}

/// The href of a person page's button (`data-action="retry"`, `"back"`...), unescaped.
pub fn action_href(body: &str, action: &str) -> Option<String> {
    let at = body.find(&format!("data-action=\"{action}\""))?;
    let rest = &body[at..];
    let href = rest.split("href=\"").nth(1)?.split('"').next()?;
    Some(unescape(href))
}

/// Undoes the HTML escaping of an attribute value.
pub fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// The text a person reads on a page: the HTML without tags, styles and scripts.
pub fn visible_text(body: &str) -> String {
    let mut body = body.to_owned();
    for tag in ["style", "script"] {
        while let Some(start) = body.find(&format!("<{tag}")) {
            let end = body[start..]
                .find(&format!("</{tag}>"))
                .map_or(body.len(), |e| start + e + tag.len() + 3);
            body.replace_range(start..end, " ");
        }
    }
    let mut out = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
}
