-- Customer-service messages (issue 16): per person and Official Account, the latest push
-- that opened the window in which the account may write to them (a message they sent, a
-- menu click, a follow, a scan), and until when the window is open. Written in the same
-- transaction as the push itself, so a send right after the push sees it.
CREATE TABLE custom_windows (
    app        TEXT   NOT NULL,
    openid     TEXT   NOT NULL,
    -- When the person last did something that opens the window (Unix seconds).
    last_at    BIGINT NOT NULL,
    -- What it was: message, menu, follow or scan.
    last_kind  TEXT   NOT NULL,
    -- The latest end of any window opened so far (Unix seconds).
    open_until BIGINT NOT NULL,
    PRIMARY KEY (app, openid)
);
