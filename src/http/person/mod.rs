//! The pages a person sees on a phone inside WeChat: the outcome of an authorization and
//! "open this in WeChat". Chinese unless the browser asks for English (`Accept-Language`,
//! or `lang=en`), branded from `[pages]`, always with a next step that works (try again,
//! back to the business, close the page), and served with the headers of a page that
//! holds a code in its URL (no referrer, no cache, no framing, scripts from us only).

mod texts;

pub use texts::Outcome;

use crate::config::PagesSettings;
use crate::context::Ctx;
use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The path of the one script the pages use (the close button).
pub const SCRIPT_PATH: &str = "/oauth/page.js";

/// The language a page is written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Zh,
    En,
}

impl Lang {
    /// `lang=en` / `lang=zh` in a query string, if given.
    pub fn from_query(query: Option<&str>) -> Option<Self> {
        let q = query?;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "lang")
            .and_then(|(_, v)| match v.to_ascii_lowercase().as_str() {
                s if s.starts_with("en") => Some(Self::En),
                s if s.starts_with("zh") => Some(Self::Zh),
                _ => None,
            })
    }

    /// English only when the browser prefers it to Chinese; Chinese otherwise.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let Some(accept) = headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
        else {
            return Self::Zh;
        };
        let (mut zh, mut en) = (None::<f32>, None::<f32>);
        for item in accept.split(',') {
            let mut parts = item.trim().split(';');
            let tag = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.parse().ok()))
                .unwrap_or(1.0);
            let slot = if tag == "zh" || tag.starts_with("zh-") {
                &mut zh
            } else if tag == "en" || tag.starts_with("en-") {
                &mut en
            } else {
                continue;
            };
            if slot.is_none_or(|old| q > old) {
                *slot = Some(q);
            }
        }
        match (zh, en) {
            (_, None) => Self::Zh,
            (None, Some(e)) if e > 0.0 => Self::En,
            (Some(z), Some(e)) if e > z => Self::En,
            _ => Self::Zh,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Zh => "zh-CN",
            Self::En => "en",
        }
    }
}

/// A page for the person. Serializable: a repeated OAuth callback gets the same page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PersonPage {
    pub outcome: Outcome,
    /// "Try again": resumes the same authorization (same app, scope, return_to, ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
    /// Back to the business: its `return_to`, or `[pages] home_url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub back: Option<String>,
    /// Offer to reload this very URL (the answer is not ready yet).
    #[serde(default)]
    pub reload: bool,
    /// The language the authorization was started in (`lang=`), over the browser's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<Lang>,
    /// "Open in WeChat": the link, and the link drawn as a QR code (SVG).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr_svg: Option<String>,
    /// Sandbox only: go on as if this browser were WeChat's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_url: Option<String>,
}

impl PersonPage {
    pub fn new(outcome: Outcome) -> Self {
        Self {
            outcome,
            retry: None,
            back: None,
            reload: false,
            lang: None,
            link: None,
            qr_svg: None,
            sandbox_url: None,
        }
    }

    pub fn retry(mut self, href: Option<String>) -> Self {
        self.retry = href;
        self
    }

    pub fn back(mut self, href: Option<String>) -> Self {
        if href.is_some() {
            self.back = href;
        }
        self
    }

    pub fn in_lang(mut self, lang: Option<Lang>) -> Self {
        self.lang = lang;
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.outcome.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The page as HTML in `lang`, branded.
    pub fn render(&self, lang: Lang, pages: &PagesSettings) -> Result<String, askama::Error> {
        let lang = self.lang.unwrap_or(lang);
        let (title, message) = self.outcome.text(lang);
        let labels = texts::labels(lang);
        let back_label = match &pages.display_name {
            Some(name) => format!("{}{name}", labels.back_to),
            None => labels.back.to_owned(),
        };
        PersonTemplate {
            page: self,
            lang: lang.as_str(),
            title,
            message,
            labels,
            back_label,
            brand: pages.display_name.as_deref(),
            support: pages.support.as_deref(),
            logo_url: pages.logo_url.as_ref().map(|u| u.as_str()),
            script: SCRIPT_PATH,
        }
        .render()
    }
}

#[derive(Template)]
#[template(path = "person.html")]
struct PersonTemplate<'a> {
    page: &'a PersonPage,
    lang: &'a str,
    title: &'a str,
    message: &'a str,
    labels: texts::Labels,
    back_label: String,
    brand: Option<&'a str>,
    support: Option<&'a str>,
    logo_url: Option<&'a str>,
    script: &'a str,
}

/// Rendered in Chinese without branding here; [`pages`] renders it again for the request
/// (its language, the operator's branding).
impl IntoResponse for PersonPage {
    fn into_response(self) -> Response {
        let status = self.status();
        let html = self
            .render(Lang::Zh, &PagesSettings::default())
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "person page template failed");
                String::from("<!doctype html><title>wxlink</title>")
            });
        let mut r = (status, Html(html)).into_response();
        r.extensions_mut().insert(self);
        r
    }
}

/// The layer of the browser routes: the person pages in the request's language and the
/// operator's branding, and the protective headers on every answer.
pub async fn pages(State(ctx): State<Ctx>, req: Request, next: Next) -> Response {
    let lang =
        Lang::from_query(req.uri().query()).unwrap_or_else(|| Lang::from_headers(req.headers()));
    let mut r = next.run(req).await;
    if let Some(page) = r.extensions_mut().remove::<PersonPage>() {
        match page.render(lang, &ctx.config.pages) {
            Ok(html) => {
                let status = r.status();
                let headers = std::mem::take(r.headers_mut());
                r = (status, Html(html)).into_response();
                for (name, value) in headers.iter() {
                    if name != header::CONTENT_LENGTH {
                        r.headers_mut().insert(name.clone(), value.clone());
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "person page template failed"),
        }
    }
    protect(r.headers_mut());
    r
}

/// Never cached (a code or a state is in the URL), never framed, no referrer leaving with
/// the code, scripts and images from known places only.
pub fn protect(h: &mut HeaderMap) {
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src 'self' https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
}

/// The close button: WeChat's bridge when there is one, else the browser's own.
pub async fn script() -> Response {
    const JS: &str = r#"(function () {
  function close() {
    if (window.WeixinJSBridge) { window.WeixinJSBridge.call('closeWindow'); return; }
    window.close();
    if (history.length > 1) { history.back(); }
  }
  document.querySelectorAll('[data-close]').forEach(function (b) {
    b.addEventListener('click', function (e) { e.preventDefault(); close(); });
  });
})();
"#;
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lang(accept: &str) -> Lang {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_str(accept).unwrap(),
        );
        Lang::from_headers(&h)
    }

    #[test]
    fn chinese_unless_english_is_preferred() {
        assert_eq!(Lang::from_headers(&HeaderMap::new()), Lang::Zh);
        assert_eq!(lang("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(lang("en-US,en;q=0.9"), Lang::En);
        assert_eq!(lang("en-US,zh-CN;q=0.5"), Lang::En);
        assert_eq!(lang("fr-FR"), Lang::Zh);
        assert_eq!(lang("en;q=0"), Lang::Zh);
        assert_eq!(Lang::from_query(Some("a=1&lang=en")), Some(Lang::En));
        assert_eq!(Lang::from_query(Some("lang=xx")), None);
    }

    #[test]
    fn no_page_names_an_id_or_speaks_to_operators() {
        for o in Outcome::ALL {
            for l in [Lang::Zh, Lang::En] {
                let (title, msg) = o.text(l);
                for word in ["unbind", "user ", "openid", "appid", "app ", "解绑"] {
                    assert!(!msg.contains(word) && !title.contains(word), "{o:?}: {msg}");
                }
                assert!(
                    msg.ends_with('。') || msg.ends_with('.'),
                    "{o:?}: a sentence"
                );
            }
        }
    }
}
