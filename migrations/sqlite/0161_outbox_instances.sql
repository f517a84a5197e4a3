-- The instances sending for the fleet, by heartbeat: each paces itself at its share of an
-- app's rate (outbox.rate_per_sec divided by the instances alive).
CREATE TABLE outbox_instances (
    owner   TEXT   PRIMARY KEY,
    seen_ms BIGINT NOT NULL
);
