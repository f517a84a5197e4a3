-- Still-current tokens each API key reported as failed, per app and Beijing day: the
-- per-key limit `tokens.invalidations_per_key_per_day`, shared by every instance.
CREATE TABLE key_invalidations (
    api_key TEXT   NOT NULL,
    app     TEXT   NOT NULL,
    day     BIGINT NOT NULL,
    count   BIGINT NOT NULL,
    PRIMARY KEY (api_key, app, day)
);
