-- WeChat server push (issue 5).
--
-- Every push that passed the signature, decryption and freshness checks, stored before it
-- is acknowledged. `dedup_key` makes WeChat's retries (and a duplicate reaching another
-- instance) land once; `handled_at` is set once the event's effect has been applied, so a
-- crash between the acknowledgement and the handling loses nothing (the sweeper finds it).
CREATE TABLE push_events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    app           TEXT    NOT NULL,
    dedup_key     TEXT    NOT NULL,
    msg_type      TEXT    NOT NULL,
    event         TEXT,
    kind          TEXT    NOT NULL,
    openid        TEXT,
    create_time   BIGINT,
    encrypted     BOOLEAN NOT NULL,
    xml           TEXT    NOT NULL,
    received_at   BIGINT  NOT NULL,
    duplicates    BIGINT  NOT NULL DEFAULT 0,
    handled_at    BIGINT,
    outcome       TEXT,
    attempts      BIGINT  NOT NULL DEFAULT 0,
    claimed_until BIGINT  NOT NULL DEFAULT 0,
    last_error    TEXT,
    UNIQUE (app, dedup_key)
);
CREATE INDEX push_events_app_received ON push_events (app, received_at);
CREATE INDEX push_events_app_kind ON push_events (app, kind, received_at);
CREATE INDEX push_events_unhandled ON push_events (id) WHERE handled_at IS NULL;

-- (timestamp, nonce, signature) of every accepted push, kept while its timestamp is inside
-- the freshness window: the same triple again is a replay. Shared by every instance.
CREATE TABLE push_nonces (
    app       TEXT   NOT NULL,
    timestamp BIGINT NOT NULL,
    nonce     TEXT   NOT NULL,
    signature TEXT   NOT NULL,
    dedup_key TEXT   NOT NULL,
    seen_at   BIGINT NOT NULL,
    PRIMARY KEY (app, timestamp, nonce, signature)
);
CREATE INDEX push_nonces_timestamp ON push_nonces (timestamp);

-- TEMPLATESENDJOBFINISH reports by (app, msgid). A report may arrive before the send's own
-- response has been stored: the outbox consults this table when it records sent(msgid),
-- and sets applied_at once the report has been applied to its message.
CREATE TABLE push_delivery_reports (
    app         TEXT   NOT NULL,
    msgid       BIGINT NOT NULL,
    status      TEXT   NOT NULL,
    openid      TEXT,
    event_id    BIGINT NOT NULL,
    reported_at BIGINT NOT NULL,
    applied_at  BIGINT,
    PRIMARY KEY (app, msgid)
);

-- Whether the person follows the Official Account (NULL: never heard), from subscribe /
-- unsubscribe pushes; follow_changed_at is WeChat's CreateTime of the latest such event.
ALTER TABLE identities ADD COLUMN follows BOOLEAN;
ALTER TABLE identities ADD COLUMN follow_changed_at BIGINT;
