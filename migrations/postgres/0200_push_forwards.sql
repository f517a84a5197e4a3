-- Push forwarding (issue 16): one row per push forwarded to the app's downstream (its
-- existing handler), keyed like the event itself, so WeChat's retries of a push, on any
-- instance, are answered from the first forward instead of forwarding again.
-- `finished_at` NULL: the forward is in flight. `answer` is what WeChat was answered (a
-- reply to a person: sealed under storage_key), emptied after an hour; `outcome` and
-- `error` say how the forward ended, for the admin page.
CREATE TABLE push_forwards (
    app          TEXT   NOT NULL,
    dedup_key    TEXT   NOT NULL,
    kind         TEXT   NOT NULL,
    openid       TEXT,
    started_at   BIGINT NOT NULL,
    finished_at  BIGINT,
    outcome      TEXT,
    status       BIGINT,
    took_ms      BIGINT,
    error        TEXT,
    content_type TEXT,
    answer       TEXT,
    PRIMARY KEY (app, dedup_key)
);
CREATE INDEX push_forwards_started ON push_forwards (started_at);
CREATE INDEX push_forwards_failed ON push_forwards (started_at) WHERE error IS NOT NULL;
