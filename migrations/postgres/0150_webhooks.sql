-- Outgoing events (the webhooks' transactional outbox): each is written in the same
-- transaction as the change that caused it, with one delivery per endpoint whose filter
-- takes its type.
CREATE TABLE webhook_events (
    -- Write order, the order of delivery: a cause is always written before its effect.
    seq         BIGSERIAL PRIMARY KEY,
    -- The webhook-id every delivery of the event carries.
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    occurred_ms BIGINT  NOT NULL,
    app         TEXT,
    openid      TEXT,
    unionid     TEXT,
    user_id     TEXT,
    -- The type's own fields, a JSON object.
    data        TEXT    NOT NULL
);
CREATE INDEX webhook_events_time ON webhook_events (occurred_ms);

-- The configured endpoints as the fleet shares them (synchronised from [[webhooks]] at
-- start-up): their filter, who delivers to them now, and how they are doing.
CREATE TABLE webhook_endpoints (
    name             TEXT   PRIMARY KEY,
    -- The filter as ",type,family.*,": what a new event is matched against.
    event_types      TEXT   NOT NULL,
    lease_owner      TEXT,
    lease_until_ms   BIGINT NOT NULL DEFAULT 0,
    -- After a failed attempt: when the head of the queue is tried again.
    next_attempt_ms  BIGINT NOT NULL DEFAULT 0,
    -- Failed attempts in a row, and since when (cleared by a success).
    failures         BIGINT NOT NULL DEFAULT 0,
    failing_since_ms BIGINT,
    -- Set once the endpoint has failed for the whole retry period.
    disabled_ms      BIGINT,
    disabled_reason  TEXT
);

-- One event for one endpoint, delivered per endpoint in the order the events were written.
CREATE TABLE webhook_deliveries (
    endpoint        TEXT   NOT NULL,
    event_id        TEXT   NOT NULL,
    event_seq       BIGINT NOT NULL,
    occurred_ms     BIGINT NOT NULL,
    -- pending | delivered
    status          TEXT   NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    created_ms      BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    delivered_ms    BIGINT,
    PRIMARY KEY (endpoint, event_id)
);
CREATE INDEX webhook_deliveries_queue ON webhook_deliveries (endpoint, event_seq)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_time ON webhook_deliveries (endpoint, occurred_ms);

-- Every attempt of a delivery and the receiver's answer.
CREATE TABLE webhook_attempts (
    endpoint    TEXT   NOT NULL,
    event_id    TEXT   NOT NULL,
    attempt     BIGINT NOT NULL,
    at_ms       BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- The HTTP status, or NULL when no answer came (refused, timed out).
    status_code BIGINT,
    error       TEXT,
    -- The first bytes of the answer's body.
    answer      TEXT,
    PRIMARY KEY (endpoint, event_id, attempt)
);
