//! The apps' templates, fetched from WeChat and cached, so a message naming an unknown
//! template or the wrong data keys is refused before it is queued.

use crate::config::AppConfig;
use crate::domain::{AppId, Channel, TemplateId, template_placeholders};
use crate::token::{CallError, TokenManager};
use crate::wechat::{ErrorClass, WechatClient};
use moka::future::Cache;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A template id that is not in a list this young is looked up again only after this long:
/// a newly added template shows up quickly, and a bad id cannot make us hammer WeChat.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// What a send needs to know about one template.
#[derive(Debug, Clone)]
pub struct TemplateInfo {
    pub title: String,
    /// The `{{name.DATA}}` names of its content, in order.
    pub placeholders: Vec<String>,
}

#[derive(Debug)]
struct TemplateSet {
    fetched: Instant,
    by_id: HashMap<String, TemplateInfo>,
}

/// Attempts per list fetch when WeChat is busy or unreachable.
const FETCH_ATTEMPTS: u32 = 3;

type Key = (AppId, Channel);

/// Every app's template lists per channel; cheap to clone.
#[derive(Clone)]
pub struct Templates {
    cache: Cache<Key, Arc<TemplateSet>>,
    /// The last list fetched, used while WeChat cannot be asked for a fresh one.
    last_good: Arc<Mutex<HashMap<Key, Arc<TemplateSet>>>>,
    tokens: TokenManager,
    wechat: WechatClient,
}

impl Templates {
    pub fn new(tokens: TokenManager, wechat: WechatClient, ttl: Duration) -> Self {
        Self {
            cache: Cache::builder().time_to_live(ttl).build(),
            last_good: Arc::default(),
            tokens,
            wechat,
        }
    }

    /// The template, or None when the app has no such template on that channel.
    pub async fn find(
        &self,
        app: &AppConfig,
        channel: Channel,
        id: &TemplateId,
    ) -> Result<Option<TemplateInfo>, Arc<CallError>> {
        let key = (app.id.clone(), channel);
        let set = self.load(app, channel, &key).await?;
        if let Some(t) = set.by_id.get(id.as_str()) {
            return Ok(Some(t.clone()));
        }
        if set.fetched.elapsed() < REFETCH_AFTER {
            return Ok(None);
        }
        self.cache.invalidate(&key).await;
        let set = self.load(app, channel, &key).await?;
        Ok(set.by_id.get(id.as_str()).cloned())
    }

    /// Concurrent callers share one fetch; when WeChat cannot answer, the last list
    /// fetched stands in.
    async fn load(
        &self,
        app: &AppConfig,
        channel: Channel,
        key: &Key,
    ) -> Result<Arc<TemplateSet>, Arc<CallError>> {
        let fresh = self
            .cache
            .try_get_with(key.clone(), async {
                let list = self.fetch_with_retries(app, channel).await?;
                let by_id = list
                    .into_iter()
                    .map(|(id, title, content)| {
                        let placeholders = template_placeholders(&content);
                        (
                            id,
                            TemplateInfo {
                                title,
                                placeholders,
                            },
                        )
                    })
                    .collect();
                Ok::<_, CallError>(Arc::new(TemplateSet {
                    fetched: Instant::now(),
                    by_id,
                }))
            })
            .await;
        let mut last = self.last_good.lock().unwrap_or_else(|e| e.into_inner());
        match fresh {
            Ok(set) => {
                last.insert(key.clone(), set.clone());
                Ok(set)
            }
            Err(e) => match last.get(key) {
                Some(old) => {
                    tracing::warn!(app = %app.id, %channel, error = %e, "cannot refresh the template list; using the last one fetched");
                    Ok(old.clone())
                }
                None => Err(e),
            },
        }
    }

    async fn fetch_with_retries(
        &self,
        app: &AppConfig,
        channel: Channel,
    ) -> Result<Vec<(String, String, String)>, CallError> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            match self.fetch(app, channel).await {
                Err(CallError::Wechat(e))
                    if attempt < FETCH_ATTEMPTS
                        && e.code().is_none_or(|c| c.class() == ErrorClass::Retryable) =>
                {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// `(id, title, content)` of every template the app has for the channel.
    async fn fetch(
        &self,
        app: &AppConfig,
        channel: Channel,
    ) -> Result<Vec<(String, String, String)>, CallError> {
        let creds = &app.wechat;
        let w = &self.wechat;
        Ok(match channel {
            Channel::Template => self
                .tokens
                .call(
                    &app.id,
                    |t| async move { w.private_templates(creds, &t).await },
                )
                .await?
                .into_iter()
                .map(|t| (t.template_id, t.title, t.content))
                .collect(),
            // An Official Account lists its subscribe-notification templates where a
            // mini-program lists its subscribe templates.
            Channel::Subscribe | Channel::OaSubscribe => self
                .tokens
                .call(&app.id, |t| async move {
                    w.subscribe_templates(creds, &t).await
                })
                .await?
                .into_iter()
                .map(|t| (t.pri_tmpl_id, t.title, t.content))
                .collect(),
            Channel::Form => self
                .tokens
                .call(
                    &app.id,
                    |t| async move { w.wxopen_templates(creds, &t).await },
                )
                .await?
                .into_iter()
                .map(|t| (t.template_id, t.title, t.content))
                .collect(),
            // Customer-service messages have no templates.
            Channel::Custom => Vec::new(),
        })
    }
}
