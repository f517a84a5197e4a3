//! The columns that hold sealed secrets, how a value is bound to its row, and re-sealing:
//! at start-up the values an older version wrote in clear, and with `wxlink reseal` every
//! value not yet under the current `storage_key` (after a rotation).
//!
//! Re-sealing writes a value back only if it is still the one read (compare-and-set), so it
//! is safe beside running instances: a value they replaced meanwhile is left to them.

use super::{Store, StoreError, with_pool};
use crate::seal::{Opened, TEXT_PREFIX};

/// A column holding sealed values, and the row key the associated data binds them to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub table: &'static str,
    /// The row's key columns; the second is empty for one-column keys.
    keys: [&'static str; 2],
    pub column: &'static str,
    /// Bytes (`mp_sessions`) rather than text with [`TEXT_PREFIX`].
    blob: bool,
    purpose: &'static str,
}

pub(crate) const WEB_ACCESS_TOKEN: Column = Column {
    table: "web_tokens",
    keys: ["app", "openid"],
    column: "access_token",
    blob: false,
    purpose: "web_access_token",
};
pub(crate) const WEB_REFRESH_TOKEN: Column = Column {
    table: "web_tokens",
    keys: ["app", "openid"],
    column: "refresh_token",
    blob: false,
    purpose: "web_refresh_token",
};
pub(crate) const ACCESS_TOKEN: Column = Column {
    table: "access_tokens",
    keys: ["app", ""],
    column: "access_token",
    blob: false,
    purpose: "access_token",
};
pub(crate) const JS_TICKET: Column = Column {
    table: "js_tickets",
    keys: ["app", "kind"],
    column: "ticket",
    blob: false,
    purpose: "js_ticket",
};
pub(crate) const OAUTH_OUTCOME: Column = Column {
    table: "oauth_exchanges",
    keys: ["code_hash", ""],
    column: "outcome",
    blob: false,
    purpose: "oauth_outcome",
};
pub(crate) const SESSION_KEY: Column = Column {
    table: "mp_sessions",
    keys: ["app", "openid"],
    column: "session_key",
    blob: true,
    purpose: "session_key",
};

/// What WeChat was answered for a forwarded push: the account's reply to a person.
pub(crate) const FORWARD_ANSWER: Column = Column {
    table: "push_forwards",
    keys: ["app", "dedup_key"],
    column: "answer",
    blob: false,
    purpose: "forward_answer",
};

/// Every sealed column, in the order `wxlink reseal` goes through them.
const ALL: [Column; 7] = [
    ACCESS_TOKEN,
    JS_TICKET,
    WEB_ACCESS_TOKEN,
    WEB_REFRESH_TOKEN,
    SESSION_KEY,
    OAUTH_OUTCOME,
    FORWARD_ANSWER,
];

/// Rows read per round trip while re-sealing.
const PAGE: i64 = 200;

impl Column {
    /// The associated data of a value: what it is and whose (a sealed value moved to
    /// another row or column does not open).
    pub fn aad(&self, k1: &str, k2: &str) -> Vec<u8> {
        if self.keys[1].is_empty() {
            format!("wxlink {}|{k1}", self.purpose).into_bytes()
        } else {
            format!("wxlink {}|{k1}|{k2}", self.purpose).into_bytes()
        }
    }

    fn name(&self) -> String {
        format!("{}.{}", self.table, self.column)
    }
}

/// What re-sealing did to one column.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResealCount {
    /// `table.column`.
    pub column: String,
    /// Values looked at.
    pub seen: u64,
    /// Values written back under the current key (from clear or the previous key).
    pub resealed: u64,
    /// Values that open with neither key: left as they are (the next write replaces them).
    pub unopenable: u64,
}

/// `wxlink reseal`: opens the configured database (applying migrations) and re-seals
/// every stored secret under `storage_key`.
pub async fn reseal(
    config: &crate::config::Config,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<ResealCount>, StoreError> {
    let store = Store::connect(&config.database_url, &config.database)
        .await?
        .with_keys(config.storage_key.clone());
    store.reseal(progress).await
}

/// The associated data of a mini-program session key (sealed by the login itself).
pub fn session_key_aad(app: &crate::domain::AppId, openid: &crate::domain::OpenId) -> Vec<u8> {
    SESSION_KEY.aad(app.as_str(), openid.as_str())
}

enum Value {
    Text(String),
    Blob(Vec<u8>),
}

impl Store {
    fn keyring(&self) -> Result<&crate::seal::Keyring, StoreError> {
        self.keys.as_deref().ok_or(StoreError::NoStorageKey)
    }

    /// Seals `plain` for `col` of the row `(k1, k2)`.
    pub(crate) fn seal_text(
        &self,
        col: &Column,
        k1: &str,
        k2: &str,
        plain: &str,
    ) -> Result<String, StoreError> {
        Ok(self.keyring()?.seal_text(plain, &col.aad(k1, k2)))
    }

    /// Opens a stored value of `col`; a value written in clear by an older version is
    /// returned as it is (start-up seals those). `None` when it does not open: the key
    /// changed without `storage_key_previous`, or the row was edited.
    pub(crate) fn open_text(
        &self,
        col: &Column,
        k1: &str,
        k2: &str,
        stored: &str,
    ) -> Option<String> {
        if !stored.starts_with(TEXT_PREFIX) {
            return Some(stored.to_owned());
        }
        let opened = self
            .keys
            .as_deref()
            .ok_or(crate::seal::SealError::Open)
            .and_then(|k| k.open_text(stored, &col.aad(k1, k2)));
        match opened {
            Ok((plain, _)) => Some(plain),
            Err(e) => {
                tracing::warn!(column = %col.name(), error = %e, "a stored sealed value does not open");
                None
            }
        }
    }

    /// Seals under the current key every value written in clear (by a version before
    /// sealing): run at start-up, so an upgrade keeps every token without a new fetch.
    pub async fn seal_plain_values(&self) -> Result<u64, StoreError> {
        let mut sealed = 0;
        for col in ALL.iter().filter(|c| !c.blob) {
            sealed += self.reseal_column(col, true, &mut |_| {}).await?.resealed;
        }
        if sealed > 0 {
            tracing::info!(
                values = sealed,
                "sealed values an older version stored in clear"
            );
        }
        Ok(sealed)
    }

    /// `wxlink reseal`: every sealed column, each value not under the current key written
    /// back under it; `progress` gets a line per page and per column.
    pub async fn reseal(
        &self,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Vec<ResealCount>, StoreError> {
        let mut counts = Vec::new();
        for col in &ALL {
            let c = self.reseal_column(col, false, progress).await?;
            progress(&format!(
                "{}: {} values, {} re-sealed, {} open with neither key",
                c.column, c.seen, c.resealed, c.unopenable
            ));
            counts.push(c);
        }
        Ok(counts)
    }

    async fn reseal_column(
        &self,
        col: &Column,
        plain_only: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<ResealCount, StoreError> {
        let keys = self.keyring()?.clone();
        let [k1, k2] = col.keys;
        let key2 = if k2.is_empty() { "''" } else { k2 };
        let order = if k2.is_empty() {
            k1.to_owned()
        } else {
            format!("{k1}, {k2}")
        };
        let plain = if plain_only {
            format!(" AND {} NOT LIKE '{TEXT_PREFIX}%'", col.column)
        } else {
            String::new()
        };
        // Keyset paging in key order (a row comparison, which both databases serve from
        // the primary key).
        let after = if k2.is_empty() {
            format!("{k1} > $1")
        } else {
            format!("({k1}, {k2}) > ($1, $2)")
        };
        let select = format!(
            "SELECT {k1}, {key2}, {c} FROM {t}
             WHERE {after} AND {c} IS NOT NULL{plain}
             ORDER BY {order} LIMIT {PAGE}",
            c = col.column,
            t = col.table,
        );
        let update = format!(
            "UPDATE {t} SET {c} = $1 WHERE {k1} = $2 AND {key2} = $3 AND {c} = $4",
            c = col.column,
            t = col.table,
        );
        let mut count = ResealCount {
            column: col.name(),
            ..Default::default()
        };
        let (mut after1, mut after2) = (String::new(), String::new());
        loop {
            let rows: Vec<(String, String, Value)> = with_pool!(&self.db, |pool| {
                use sqlx::Row;
                let mut q = sqlx::query(&select).bind(&after1);
                if !k2.is_empty() {
                    q = q.bind(&after2);
                }
                let rows = q.fetch_all(pool).await?;
                let mut out = Vec::with_capacity(rows.len());
                for r in rows {
                    let value = if col.blob {
                        Value::Blob(r.try_get(2)?)
                    } else {
                        Value::Text(r.try_get(2)?)
                    };
                    out.push((r.try_get(0)?, r.try_get(1)?, value));
                }
                out
            });
            let Some(last) = rows.last() else { break };
            (after1, after2) = (last.0.clone(), last.1.clone());
            let n = rows.len() as i64;
            for (a, b, value) in rows {
                count.seen += 1;
                let aad = col.aad(&a, &b);
                let fresh = match &value {
                    Value::Text(s) => match keys.open_text(s, &aad) {
                        Ok((_, Opened::Current)) => None,
                        Ok((p, _)) => Some(Value::Text(keys.seal_text(&p, &aad))),
                        Err(_) => {
                            count.unopenable += 1;
                            None
                        }
                    },
                    Value::Blob(s) => match keys.open(s, &aad) {
                        Ok((_, Opened::Current)) => None,
                        Ok((p, _)) => Some(Value::Blob(keys.seal(&p, &aad))),
                        Err(_) => {
                            count.unopenable += 1;
                            None
                        }
                    },
                };
                let Some(fresh) = fresh else { continue };
                let written = with_pool!(&self.write, |pool| {
                    let q = match fresh {
                        Value::Text(s) => sqlx::query(&update).bind(s),
                        Value::Blob(s) => sqlx::query(&update).bind(s),
                    }
                    .bind(&a)
                    .bind(&b);
                    let q = match value {
                        Value::Text(s) => q.bind(s),
                        Value::Blob(s) => q.bind(s),
                    };
                    q.execute(pool).await?.rows_affected()
                });
                count.resealed += written;
            }
            if count.seen % 1000 < PAGE as u64 && count.seen >= 1000 {
                progress(&format!(
                    "{}: {} values so far, {} re-sealed",
                    count.column, count.seen, count.resealed
                ));
            }
            if n < PAGE {
                break;
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_bound_to_its_column_and_row() {
        let all: std::collections::BTreeSet<Vec<u8>> =
            ALL.iter().map(|c| c.aad("mp", "o-1")).collect();
        assert_eq!(all.len(), ALL.len(), "each column binds its own way");
        assert_ne!(SESSION_KEY.aad("mp", "o-1"), SESSION_KEY.aad("mp", "o-2"));
        assert_eq!(SESSION_KEY.aad("mp", "o-1"), b"wxlink session_key|mp|o-1");
        assert_eq!(OAUTH_OUTCOME.aad("h", ""), b"wxlink oauth_outcome|h");
    }
}
