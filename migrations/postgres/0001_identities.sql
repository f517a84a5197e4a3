-- People's WeChat identities per configured app, and their binding to business users.
CREATE TABLE identities (
    app         TEXT    NOT NULL,
    openid      TEXT    NOT NULL,
    unionid     TEXT,
    user_id     TEXT,
    scope       TEXT    NOT NULL,
    profile     TEXT,
    is_snapshot BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    bound_at    BIGINT,
    PRIMARY KEY (app, openid)
);
CREATE INDEX identities_user_id ON identities (user_id);
CREATE INDEX identities_unionid ON identities (unionid);

-- Web (per-person) access and refresh tokens. Never returned by the API.
CREATE TABLE web_tokens (
    app                TEXT   NOT NULL,
    openid             TEXT   NOT NULL,
    access_token       TEXT   NOT NULL,
    refresh_token      TEXT   NOT NULL,
    scope              TEXT   NOT NULL,
    expires_at         BIGINT NOT NULL,
    refresh_expires_at BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    PRIMARY KEY (app, openid)
);

-- Single-use authorization links minted for a business user (jump-out flow). Hashed.
CREATE TABLE link_tickets (
    ticket_hash TEXT   PRIMARY KEY,
    app         TEXT   NOT NULL,
    user_id     TEXT   NOT NULL,
    scope       TEXT   NOT NULL,
    return_to   TEXT,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
);

-- One-time codes handed to return_to, redeemed by a backend. Hashed.
CREATE TABLE login_codes (
    code_hash  TEXT   PRIMARY KEY,
    app        TEXT   NOT NULL,
    openid     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);

-- Each authorization code is exchanged once; a repeated callback is answered from here.
CREATE TABLE oauth_exchanges (
    code_hash   TEXT   PRIMARY KEY,
    app         TEXT   NOT NULL,
    state_hash  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    finished_at BIGINT,
    outcome     TEXT
);
