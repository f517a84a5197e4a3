-- Each app's global access token, shared by every wxlink instance on this database.
-- `version` is the fencing number: a new token is written only over the version it was
-- fetched to replace, so an older token can never overwrite a newer one. The lease makes
-- exactly one instance call WeChat per refresh.
CREATE TABLE access_tokens (
    app           TEXT   PRIMARY KEY,
    mode          TEXT   NOT NULL,
    access_token  TEXT,
    expires_at    BIGINT NOT NULL DEFAULT 0,
    version       BIGINT NOT NULL DEFAULT 0,
    fetched_at    BIGINT,
    lease_owner   TEXT,
    lease_until   BIGINT NOT NULL DEFAULT 0,
    fetch_day     BIGINT NOT NULL DEFAULT 0,
    fetch_count   BIGINT NOT NULL DEFAULT 0,
    force_day     BIGINT NOT NULL DEFAULT 0,
    force_count   BIGINT NOT NULL DEFAULT 0,
    last_force_at BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL
);
