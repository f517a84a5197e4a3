//! A real browser: headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`) with fantoccini, for the browser suite (`browser_suite.rs`). Each
//! test starts its own chromedriver on a free port with one fresh profile. Without
//! Chromium a test prints `SKIPPED: …` and returns, unless `WXLINK_TEST_REQUIRE_BROWSER=1`
//! (set by `.ci/run`) makes that a failure. A failing test leaves a screenshot and the
//! page's HTML in `target/test-artifacts/`.

use super::browser::WECHAT_UA;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::future::Future;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The screen a test's browser has.
#[derive(Clone, Copy, Debug)]
pub enum Device {
    /// A phone inside WeChat: 390x844, WeChat's User-Agent.
    WeChatPhone,
    /// A desktop browser, outside WeChat.
    Desktop,
}

/// Chromium and chromedriver, from `WXLINK_TEST_CHROMIUM` / `WXLINK_TEST_CHROMEDRIVER` or
/// Debian's paths; `None` (after saying so) when either is missing and CI does not
/// require them.
fn binaries(test: &str) -> Option<(PathBuf, PathBuf)> {
    let pick = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let chromium = pick("WXLINK_TEST_CHROMIUM", "/usr/bin/chromium");
    let driver = pick("WXLINK_TEST_CHROMEDRIVER", "/usr/bin/chromedriver");
    let missing: Vec<String> = [&chromium, &driver]
        .into_iter()
        .filter(|p| !p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if missing.is_empty() {
        return Some((chromium, driver));
    }
    let why = format!(
        "{} not found (apt-get install chromium chromium-driver, or set WXLINK_TEST_CHROMIUM and WXLINK_TEST_CHROMEDRIVER)",
        missing.join(" and ")
    );
    if std::env::var("WXLINK_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("{test}: the browser suite is required (WXLINK_TEST_REQUIRE_BROWSER=1) but {why}");
    }
    eprintln!("SKIPPED: {test}: {why}");
    None
}

/// One chromedriver with one browser session; both end when it is dropped.
struct Session {
    client: Client,
    _driver: Child,
    _profile: tempfile::TempDir,
}

async fn start(chromium: &std::path::Path, driver: &std::path::Path, device: Device) -> Session {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let mut child = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", driver.display()));
    let url = format!("http://127.0.0.1:{port}");
    let probe = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("chromedriver exited at start-up ({status})");
        }
        if let Ok(r) = probe.get(format!("{url}/status")).send().await
            && let Ok(v) = r.json::<Value>().await
            && v["value"]["ready"] == true
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        ready,
        "chromedriver did not answer on port {port} within 10 s"
    );
    let profile = tempfile::tempdir().unwrap();
    let (size, emulation) = match device {
        Device::WeChatPhone => (
            "390,844",
            json!({
                "deviceMetrics": {"width": 390, "height": 844, "pixelRatio": 3.0, "touch": true},
                "userAgent": WECHAT_UA,
            }),
        ),
        Device::Desktop => ("1280,900", Value::Null),
    };
    let mut options = json!({
        "binary": chromium,
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--disable-extensions", "--lang=zh-CN", "--accept-lang=zh-CN,zh",
            format!("--window-size={size}"),
            format!("--user-data-dir={}", profile.path().display()),
        ],
        "prefs": {"intl.accept_languages": "zh-CN,zh"},
    });
    if !emulation.is_null() {
        options["mobileEmulation"] = emulation;
    }
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    let client = ClientBuilder::rustls()
        .expect("TLS roots")
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("no Chromium session: {e}"));
    Session {
        client,
        _driver: child,
        _profile: profile,
    }
}

/// Runs `test` in a fresh Chromium on `device`. A failure leaves
/// `target/test-artifacts/<name>.png` and `.html` behind, then fails the test.
pub async fn in_chromium<F, Fut>(name: &str, device: Device, test: F)
where
    F: FnOnce(Tab) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some((chromium, driver)) = binaries(name) else {
        return;
    };
    let session = start(&chromium, &driver, device).await;
    let tab = Tab {
        client: session.client.clone(),
    };
    let outcome = tokio::spawn(test(tab)).await;
    if outcome.is_err() {
        keep_artifacts(&session.client, name).await;
    }
    let _ = session.client.clone().close().await;
    drop(session);
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("{name}: {e}"),
        }
    }
}

/// Where failures' screenshots go: `target/test-artifacts/` (under `CARGO_TARGET_DIR`
/// when it is set).
pub fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("test-artifacts")
}

async fn keep_artifacts(client: &Client, name: &str) {
    let dir = artifacts_dir();
    let _ = std::fs::create_dir_all(&dir);
    if let Ok(png) = client.screenshot().await {
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }
    if let Ok(html) = client.source().await {
        let url = client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default();
        let _ = std::fs::write(
            dir.join(format!("{name}.html")),
            format!("<!-- {url} -->\n{html}"),
        );
    }
    eprintln!("{name}: screenshot and page kept in {}", dir.display());
}

/// The browser tab a test drives: what a person does and sees.
#[derive(Clone)]
pub struct Tab {
    pub client: Client,
}

/// How long a page may take to come (a redirect chain, a reload).
const PATIENCE: Duration = Duration::from_secs(10);

impl Tab {
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("goto {url}: {e}"));
    }

    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Waits until the page's URL starts with `prefix`; the URL.
    pub async fn wait_for_url(&self, prefix: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let url = self.url().await;
            if url.starts_with(prefix) {
                return url;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "still at {url}, not {prefix}…"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the page declares `outcome` (`<main data-outcome>`).
    pub async fn wait_for_outcome(&self, outcome: &str) {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let got = self.outcome().await;
            if got.as_deref() == Some(outcome) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the page at {} shows {got:?}, not {outcome}: {}",
                self.url().await,
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn outcome(&self) -> Option<String> {
        let main = self.client.find(Locator::Css("main")).await.ok()?;
        main.attr("data-outcome").await.ok().flatten()
    }

    /// The text a person reads on the page.
    pub async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css} on {}: {e}", self.url().await),
        }
    }

    /// Clicks a link or a form's button, then waits until the next page has loaded (the
    /// redirects it goes through included), so nothing is read from or clicked on the page
    /// being left.
    pub async fn click_through(&self, css: &str) {
        let element = self.find(css).await;
        self.client
            .execute("window.__leaving = true", vec![])
            .await
            .unwrap();
        element.click().await.unwrap();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let arrived = self
                .client
                .execute(
                    "return window.__leaving === undefined && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .map(|v| v == Value::Bool(true))
                .unwrap_or(false);
            if arrived {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "clicking {css} led nowhere within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    /// Types `text` into the field `css` in place of what it held.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        field.clear().await.unwrap();
        field.send_keys(text).await.unwrap();
    }

    /// The buttons of a page: each one's text and where it leads (`href`, or `close` for
    /// the close button, which runs the page's script).
    pub async fn buttons(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for b in self
            .client
            .find_all(Locator::Css(".btn, button"))
            .await
            .unwrap()
        {
            let text = b.text().await.unwrap_or_default();
            let to = match b.attr("href").await.unwrap() {
                Some(href) => href,
                None if b.attr("data-close").await.unwrap().is_some() => "close".into(),
                None => b
                    .attr("type")
                    .await
                    .unwrap()
                    .unwrap_or_else(|| "submit".into()),
            };
            out.push((text, to));
        }
        out
    }

    /// On the simulator's WeChat page: picks `person` and answers `allow` or `deny`.
    pub async fn answer_wechat(&self, person: &str, decision: &str) {
        self.find("select#person")
            .await
            .select_by_value(person)
            .await
            .unwrap();
        self.click_through(&format!("button[name=decision][value={decision}]"))
            .await;
    }
}

/// Whether `text` is written for a Chinese reader (holds CJK characters).
pub fn is_chinese(text: &str) -> bool {
    text.chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count()
        >= 4
}
