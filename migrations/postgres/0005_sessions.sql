-- Mini-program sessions: the session key of the last jscode2session of each identity,
-- sealed with AES-256-GCM under the configured storage_key (version || nonce ||
-- ciphertext || tag, bound to app and openid). Never returned by the API, never logged.
CREATE TABLE mp_sessions (
    app         TEXT   NOT NULL,
    openid      TEXT   NOT NULL,
    session_key BYTEA  NOT NULL,
    logins      BIGINT NOT NULL DEFAULT 1,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (app, openid),
    FOREIGN KEY (app, openid) REFERENCES identities (app, openid) ON DELETE CASCADE
);
