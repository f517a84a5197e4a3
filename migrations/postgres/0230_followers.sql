-- Follower info (cgi-bin/user/info, user/info/batchget, user/get).

-- The latest lookup of each identity's follower info: the background fill asks WeChat
-- about an identity without a unionid once, not every pass.
CREATE TABLE follower_lookups (
    app TEXT NOT NULL,
    openid TEXT NOT NULL,
    looked_up_at BIGINT NOT NULL,
    -- `follows`, `not_following` or `invalid_openid` (40003)
    result TEXT NOT NULL,
    PRIMARY KEY (app, openid)
);

-- Identities to look up soon (a `subscribe` push queued them); claimed by pushing
-- `not_before` out, deleted once looked up.
CREATE TABLE follower_refresh_queue (
    app TEXT NOT NULL,
    openid TEXT NOT NULL,
    queued_at BIGINT NOT NULL,
    not_before BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (app, openid)
);

-- Lookups the background fill spent per app and Beijing day, shared by the fleet.
CREATE TABLE follower_quota (
    app TEXT NOT NULL,
    day BIGINT NOT NULL,
    used BIGINT NOT NULL,
    PRIMARY KEY (app, day)
);

-- One import of an app's followers at a time: where it is (the `next_openid` its current
-- page was fetched with, and how much of that page is stored) and who runs it (a lease).
CREATE TABLE follower_imports (
    app TEXT PRIMARY KEY,
    -- `running`, `done` or `failed`
    state TEXT NOT NULL,
    next_openid TEXT NOT NULL DEFAULT '',
    page_done BIGINT NOT NULL DEFAULT 0,
    total BIGINT,
    imported BIGINT NOT NULL DEFAULT 0,
    bound BIGINT NOT NULL DEFAULT 0,
    pages BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    started_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
