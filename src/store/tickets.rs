//! The shared JS-SDK tickets per app and kind: compare-and-set writes over a version and
//! the refresh lease, as for access tokens ([`super::leases`]).

use super::leases::Leased;
use super::sealed::JS_TICKET;
use super::{Store, StoreError, with_pool};
use crate::domain::{AppId, TicketKind};

/// Debug leaves the ticket out: it is never logged.
#[derive(Clone, sqlx::FromRow)]
pub struct StoredTicket {
    /// Opened: it is stored sealed under the storage key.
    pub ticket: Option<String>,
    pub expires_at: i64,
    pub version: i64,
    pub fetched_at: Option<i64>,
    /// getticket calls the fleet made on `fetch_day` (Beijing).
    pub fetch_day: i64,
    pub fetch_count: i64,
}

impl std::fmt::Debug for StoredTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTicket")
            .field("expires_at", &self.expires_at)
            .field("version", &self.version)
            .field("fetched_at", &self.fetched_at)
            .field("fetch_day", &self.fetch_day)
            .field("fetch_count", &self.fetch_count)
            .finish_non_exhaustive()
    }
}

fn ticket_row<'a>(app: &'a AppId, kind: TicketKind) -> Leased<'a> {
    Leased {
        table: "js_tickets",
        keys: vec![("app", app.as_str()), ("kind", kind.as_str())],
    }
}

impl Store {
    /// The ticket row, created empty on first use (read first: refreshers read it often).
    pub async fn stored_ticket(
        &self,
        app: &AppId,
        kind: TicketKind,
        now: i64,
    ) -> Result<StoredTicket, StoreError> {
        let select = "SELECT ticket, expires_at, version, fetched_at, fetch_day, fetch_count
                      FROM js_tickets WHERE app = $1 AND kind = $2";
        let insert = "INSERT INTO js_tickets (app, kind, updated_at) VALUES ($1, $2, $3)
                      ON CONFLICT (app, kind) DO NOTHING";
        let mut row: StoredTicket = with_pool!(&self.db, |pool| {
            let row = sqlx::query_as(select)
                .bind(app)
                .bind(kind)
                .fetch_optional(pool)
                .await?;
            match row {
                Some(row) => row,
                None => {
                    sqlx::query(insert)
                        .bind(app)
                        .bind(kind)
                        .bind(now)
                        .execute(pool)
                        .await?;
                    sqlx::query_as(select)
                        .bind(app)
                        .bind(kind)
                        .fetch_one(pool)
                        .await?
                }
            }
        });
        // One that does not open is no ticket: the next use fetches a new one.
        row.ticket = row
            .ticket
            .and_then(|t| self.open_text(&JS_TICKET, app.as_str(), kind.as_str(), &t));
        Ok(row)
    }

    pub async fn try_ticket_lease(
        &self,
        app: &AppId,
        kind: TicketKind,
        owner: &str,
        version: i64,
        now: i64,
        lease_secs: i64,
    ) -> Result<bool, StoreError> {
        self.try_lease(&ticket_row(app, kind), owner, version, now, lease_secs)
            .await
    }

    pub async fn release_ticket_lease(
        &self,
        app: &AppId,
        kind: TicketKind,
        owner: &str,
    ) -> Result<(), StoreError> {
        self.release_lease(&ticket_row(app, kind), owner).await
    }

    /// Writes a freshly fetched ticket over `expected_version` only (compare-and-set) and
    /// releases the lease. The new version, or None if someone wrote first.
    #[allow(clippy::too_many_arguments)]
    pub async fn save_ticket(
        &self,
        app: &AppId,
        kind: TicketKind,
        expected_version: i64,
        ticket: &str,
        expires_at: i64,
        now: i64,
        day: i64,
    ) -> Result<Option<i64>, StoreError> {
        let sql = "UPDATE js_tickets SET
                       ticket = $1, expires_at = $2, version = version + 1, fetched_at = $3,
                       lease_owner = NULL, lease_until = 0,
                       fetch_count = CASE WHEN fetch_day = $4 THEN fetch_count + 1 ELSE 1 END,
                       fetch_day = $4, updated_at = $3
                   WHERE app = $5 AND kind = $6 AND version = $7
                   RETURNING version";
        let sealed = self.seal_text(&JS_TICKET, app.as_str(), kind.as_str(), ticket)?;
        let v: Option<(i64,)> = with_pool!(&self.write, |pool| {
            sqlx::query_as(sql)
                .bind(sealed)
                .bind(expires_at)
                .bind(now)
                .bind(day)
                .bind(app)
                .bind(kind)
                .bind(expected_version)
                .fetch_optional(pool)
                .await?
        });
        Ok(v.map(|(v,)| v))
    }

    /// Drops every stored ticket: the sandbox's simulator starts afresh each run.
    pub async fn forget_js_tickets(&self) -> Result<(), StoreError> {
        with_pool!(&self.write, |pool| {
            sqlx::query("DELETE FROM js_tickets").execute(pool).await?;
        });
        Ok(())
    }
}
