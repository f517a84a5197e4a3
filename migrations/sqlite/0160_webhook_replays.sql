-- How many times a delivery was queued again by a replay. A batch reads it with the
-- delivery and marks the delivery delivered only if it is unchanged, so a replay made while
-- an attempt is in flight is delivered again rather than swallowed.
ALTER TABLE webhook_deliveries ADD COLUMN replays BIGINT NOT NULL DEFAULT 0;
