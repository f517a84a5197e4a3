//! Forwarding verified pushes to the app's downstream (the handler the account had before
//! wxlink), exactly as WeChat sent them: same method, same query string (so `signature`,
//! `msg_signature`, `timestamp`, `nonce`, `openid`, `encrypt_type` still verify), same body
//! bytes. The downstream's answer (a passive reply, plain or encrypted, or `success`) is the
//! answer to WeChat; on timeout, error or a non-200 WeChat gets `success`, and the failure
//! is stored and counted.
//!
//! A push is forwarded once: its first arrival claims it in the store (keyed like the event,
//! so WeChat's retries on any instance find the claim). A retry arriving while that forward
//! is in flight waits for its answer (here through a watch channel, on another instance by
//! polling the store) until its own deadline; a later one is given the stored answer.
//!
//! The forward runs on a task of its own: a push whose WeChat connection drops still has its
//! forward finished and recorded, so its retry gets the answer. wxlink's own handling of the
//! event was queued before any of this and never waits for the downstream.

use super::forward_writer::ForwardWriter;
use crate::clock::Clock;
use crate::config::ForwardConfig;
use crate::domain::AppId;
use crate::store::{ForwardRecord, ForwardState, ForwardWrite, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Larger answers are not relayed: WeChat's replies are a few kilobytes.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// How often a retry whose first forward runs on another instance looks for the answer.
const POLL: Duration = Duration::from_millis(25);
/// What a waiting handler allows past the deadline for the forward task to publish.
const GRACE: Duration = Duration::from_millis(150);

const TEXT: &str = "text/plain; charset=utf-8";

/// What wxlink answers WeChat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub content_type: String,
    pub body: String,
}

impl Answer {
    /// "No reply": what WeChat gets when the downstream's answer is not to be had.
    pub fn success() -> Self {
        Self {
            content_type: TEXT.to_owned(),
            body: "success".to_owned(),
        }
    }
}

/// One verified push as WeChat sent it.
#[derive(Debug, Clone, Copy)]
pub struct AsSent<'a> {
    /// The query string, untouched.
    pub query: &'a str,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// When it arrived: the deadline counts from here.
    pub arrived: Instant,
}

/// The push's identity in the store: its app and dedup key, what kind it is, from whom.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub app: &'a AppId,
    pub dedup_key: &'a str,
    pub kind: &'a str,
    pub openid: Option<&'a str>,
}

type Key = (AppId, String);

/// Forwards pushes; cheap to clone.
#[derive(Clone)]
pub struct Forwarder {
    http: reqwest::Client,
    /// Reads a forward's answer made elsewhere.
    store: Store,
    /// Writes claims and finishes, batched.
    records: ForwardWriter,
    clock: Clock,
    /// Forwards in flight on this instance, by push: a retry waits on the first's answer.
    inflight: Arc<Mutex<HashMap<Key, watch::Receiver<Option<Answer>>>>>,
}

/// How one forward ended.
struct Ended {
    outcome: &'static str,
    status: Option<u16>,
    error: Option<String>,
    answer: Answer,
}

impl Forwarder {
    pub fn new(store: Store, clock: Clock) -> Result<Self, reqwest::Error> {
        // A redirect is not followed: WeChat would not follow one either. Timeouts are per
        // forward (what is left of its deadline).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxlink-forward/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            records: ForwardWriter::start(store.clone()),
            store,
            clock,
            inflight: Arc::default(),
        })
    }

    /// The answer WeChat gets for this push: the downstream's, or `success` when it cannot
    /// be had by the deadline. Forwards the push unless an earlier arrival of it did.
    pub async fn answer(&self, cfg: &ForwardConfig, id: Identity<'_>, sent: AsSent<'_>) -> Answer {
        let deadline = sent.arrived + cfg.timeout;
        let key: Key = (id.app.clone(), id.dedup_key.to_owned());
        let existing = self
            .inflight
            .lock()
            .expect("inflight lock")
            .get(&key)
            .cloned();
        let rx = match existing {
            Some(rx) => {
                crate::metrics::push_forward(id.app, "repeat", None);
                rx
            }
            None => {
                let (tx, rx) = watch::channel(None);
                let mut map = self.inflight.lock().expect("inflight lock");
                if let Some(rx) = map.get(&key) {
                    // Another arrival of the same push got here between the two looks.
                    crate::metrics::push_forward(id.app, "repeat", None);
                    rx.clone()
                } else {
                    map.insert(key.clone(), rx.clone());
                    drop(map);
                    let job = Job {
                        forwarder: self.clone(),
                        key,
                        kind: id.kind.to_owned(),
                        openid: id.openid.map(str::to_owned),
                        url: target(&cfg.url, sent.query),
                        content_type: sent.content_type.unwrap_or("text/xml").to_owned(),
                        body: sent.body.to_vec(),
                        timeout: cfg.timeout,
                        deadline,
                    };
                    tokio::spawn(job.run(tx));
                    rx
                }
            }
        };
        wait(rx, deadline + GRACE).await
    }
}

/// The downstream's URL with a query string appended as it came (`wxlink check` too).
pub fn target(url: &url::Url, query: &str) -> String {
    let sep = if url.query().is_some() { '&' } else { '?' };
    format!("{}{sep}{query}", url.as_str())
}

async fn wait(mut rx: watch::Receiver<Option<Answer>>, until: Instant) -> Answer {
    match tokio::time::timeout_at(until, rx.wait_for(Option::is_some)).await {
        Ok(Ok(a)) => a.clone().unwrap_or_else(Answer::success),
        _ => Answer::success(),
    }
}

/// One push's forward (or, when another instance claimed it, its wait for that answer).
struct Job {
    forwarder: Forwarder,
    key: Key,
    kind: String,
    openid: Option<String>,
    url: String,
    content_type: String,
    body: Vec<u8>,
    timeout: Duration,
    deadline: Instant,
}

impl Job {
    async fn run(self, tx: watch::Sender<Option<Answer>>) {
        let f = &self.forwarder;
        let (app, dedup_key) = (&self.key.0, self.key.1.as_str());
        let claimed = f
            .records
            .write(ForwardWrite::Claim {
                app: app.clone(),
                dedup_key: dedup_key.to_owned(),
                kind: self.kind.clone(),
                openid: self.openid.clone(),
                at: f.clock.timestamp(),
            })
            .await;
        let claimed = match claimed {
            Ok(c) => c,
            Err(e) => {
                // Better the downstream hears a push twice (should WeChat retry) than never.
                tracing::error!(error = %e, app = %app, "cannot record a push's forward; forwarding it anyway");
                true
            }
        };
        if !claimed {
            crate::metrics::push_forward(app, "repeat", None);
            let answer = self.answer_of_earlier().await;
            tx.send_replace(Some(answer));
            f.inflight.lock().expect("inflight lock").remove(&self.key);
            return;
        }
        let started = Instant::now();
        let ended = self.send().await;
        let took = started.elapsed();
        crate::metrics::push_forward(app, ended.outcome, Some(took));
        if let Some(error) = &ended.error {
            tracing::warn!(app = %app, kind = %self.kind, outcome = ended.outcome, "push forward failed, WeChat gets success: {error}");
        }
        tx.send_replace(Some(ended.answer.clone()));
        let finish = ForwardWrite::Finish {
            app: app.clone(),
            dedup_key: dedup_key.to_owned(),
            record: ForwardRecord {
                outcome: ended.outcome,
                status: ended.status,
                took_ms: took.as_millis() as i64,
                error: ended.error,
                content_type: ended.answer.content_type,
                answer: ended.answer.body,
            },
            at: f.clock.timestamp(),
        };
        if let Err(e) = f.records.write(finish).await {
            tracing::error!(error = %e, app = %app, "cannot record how a push's forward ended; its retries get success");
        }
        f.inflight.lock().expect("inflight lock").remove(&self.key);
    }

    /// The answer of the forward another instance (or an earlier process) made.
    async fn answer_of_earlier(&self) -> Answer {
        let (app, dedup_key) = (&self.key.0, self.key.1.as_str());
        loop {
            match self.forwarder.store.forward_state(app, dedup_key).await {
                Ok(ForwardState::Answered {
                    content_type,
                    answer: Some(body),
                }) => return Answer { content_type, body },
                Ok(ForwardState::Answered { answer: None, .. }) => return Answer::success(),
                Ok(ForwardState::InFlight | ForwardState::Missing) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read a push's forward"),
            }
            if Instant::now() + POLL >= self.deadline {
                return Answer::success();
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn send(&self) -> Ended {
        let failed = |outcome, status, error: String| Ended {
            outcome,
            status,
            error: Some(error),
            answer: Answer::success(),
        };
        let timed_out = || {
            failed(
                "timeout",
                None,
                format!("no answer within {} ms", self.timeout.as_millis()),
            )
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return timed_out();
        }
        let sent = self
            .forwarder
            .http
            .post(&self.url)
            .timeout(left)
            .header(reqwest::header::CONTENT_TYPE, &self.content_type)
            .body(self.body.clone())
            .send()
            .await;
        let mut r = match sent {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return timed_out(),
            Err(e) => return failed("unreachable", None, cause(e)),
        };
        let status = r.status().as_u16();
        let content_type = r
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(TEXT)
            .to_owned();
        let mut body = Vec::new();
        loop {
            match r.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_ANSWER_BYTES {
                        return failed(
                            "bad_answer",
                            Some(status),
                            format!("the answer is over {MAX_ANSWER_BYTES} bytes"),
                        );
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return timed_out(),
                Err(e) => return failed("unreachable", Some(status), cause(e)),
            }
        }
        if status != 200 {
            return failed(
                "bad_status",
                Some(status),
                format!("the downstream answered HTTP {status}"),
            );
        }
        let Ok(text) = String::from_utf8(body) else {
            return failed(
                "bad_answer",
                Some(status),
                "the answer is not UTF-8".to_owned(),
            );
        };
        let outcome = match classify(&text) {
            Some(o) => o,
            None => {
                let head: String = text.chars().take(60).collect();
                return failed(
                    "bad_answer",
                    Some(status),
                    format!("the answer is neither `success` nor a reply <xml>: {head:?}"),
                );
            }
        };
        Ended {
            outcome,
            status: Some(status),
            error: None,
            answer: Answer {
                content_type,
                body: text,
            },
        }
    }
}

/// `success` for "no reply" (WeChat's `success` or an empty answer), `reply` for a reply
/// message (plain, or the encrypted envelope), `None` for anything WeChat would not take.
fn classify(answer: &str) -> Option<&'static str> {
    let t = answer.trim();
    if t.is_empty() || t == "success" {
        Some("success")
    } else if t.starts_with("<xml") && t.ends_with("</xml>") {
        Some("reply")
    } else {
        None
    }
}

/// A transport error with its causes, without the URL (its query carries the signature).
fn cause(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(s) = next {
        text.push_str(": ");
        text.push_str(&s.to_string());
        next = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_wechat_takes_and_those_it_does_not() {
        assert_eq!(classify("success"), Some("success"));
        assert_eq!(classify(""), Some("success"));
        assert_eq!(classify(" success\n"), Some("success"));
        assert_eq!(
            classify("<xml><ToUserName>o</ToUserName><MsgType>text</MsgType></xml>"),
            Some("reply")
        );
        assert_eq!(classify("<xml><Encrypt>x</Encrypt></xml>\n"), Some("reply"));
        assert_eq!(classify("<html>502 Bad Gateway</html>"), None);
        assert_eq!(classify("ok"), None);
    }

    #[test]
    fn the_query_is_appended_as_it_came() {
        let q = "signature=ab&timestamp=1&nonce=2&openid=o%2Bx&encrypt_type=aes&msg_signature=cd";
        let u = url::Url::parse("http://h:81/wechat").unwrap();
        assert_eq!(target(&u, q), format!("http://h:81/wechat?{q}"));
        let u = url::Url::parse("http://h/wx?app=old").unwrap();
        assert_eq!(target(&u, q), format!("http://h/wx?app=old&{q}"));
    }
}
