-- Each Official Account's JS-SDK tickets (`jsapi`, `wx_card`), shared by every wxlink
-- instance on this database exactly as `access_tokens` is: `version` fences writes (a
-- ticket is written only over the version it was fetched to replace), the lease makes one
-- instance call getticket per refresh, and the ticket is sealed under `storage_key`.
CREATE TABLE js_tickets (
    app          TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    ticket       TEXT,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    version      BIGINT NOT NULL DEFAULT 0,
    fetched_at   BIGINT,
    lease_owner  TEXT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    fetch_day    BIGINT NOT NULL DEFAULT 0,
    fetch_count  BIGINT NOT NULL DEFAULT 0,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (app, kind)
);
