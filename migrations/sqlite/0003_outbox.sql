-- The outbox: every accepted message, written before the API answers 202, and sent by
-- workers that claim it with a lease (an instance that dies leaves its lease to run out).
CREATE TABLE messages (
    id              TEXT    PRIMARY KEY,
    caller          TEXT    NOT NULL,
    idempotency_key TEXT,
    request_hash    TEXT    NOT NULL,
    user_id         TEXT    NOT NULL,
    app             TEXT    NOT NULL,
    channel         TEXT    NOT NULL,
    openid          TEXT    NOT NULL,
    template_id     TEXT    NOT NULL,
    category        TEXT,
    -- The channel's request body without touser and token, as JSON.
    payload         TEXT    NOT NULL,
    -- queued | sending | sent | delivered | failed | rejected
    status          TEXT    NOT NULL,
    msgid           BIGINT,
    errcode         BIGINT,
    reason          TEXT,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT  NOT NULL,
    lease_owner     TEXT,
    lease_until_ms  BIGINT  NOT NULL DEFAULT 0,
    -- A subscribe message holds one unit of the person's subscription from acceptance on.
    holds_subscription BOOLEAN NOT NULL DEFAULT FALSE,
    -- One JSON object per line: every state change with its time.
    history         TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL
);
CREATE UNIQUE INDEX messages_idempotency ON messages (caller, idempotency_key);
CREATE INDEX messages_due ON messages (next_attempt_ms) WHERE status IN ('queued', 'sending');
CREATE INDEX messages_user ON messages (user_id, id);
CREATE INDEX messages_msgid ON messages (app, msgid);

-- An app's channel is held after WeChat's daily quota (45009) until the quota resets.
CREATE TABLE send_holds (
    app      TEXT   NOT NULL,
    channel  TEXT   NOT NULL,
    until_ms BIGINT NOT NULL,
    reason   TEXT   NOT NULL,
    PRIMARY KEY (app, channel)
);

-- The subscription ledger: what a person accepted in the mini-program.
CREATE TABLE subscriptions (
    app         TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    template_id TEXT    NOT NULL,
    remaining   BIGINT  NOT NULL DEFAULT 0,
    long_term   BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (app, openid, template_id)
);

-- Legacy form_id (1 send) and prepay_id (3 sends), both valid 7 days.
CREATE TABLE form_ids (
    app        TEXT   NOT NULL,
    form_id    TEXT   NOT NULL,
    openid     TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    uses_left  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (app, form_id)
);
CREATE INDEX form_ids_usable ON form_ids (app, openid, expires_at);

-- Categories a user muted.
CREATE TABLE muted_categories (
    user_id  TEXT   NOT NULL,
    category TEXT   NOT NULL,
    muted_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, category)
);
