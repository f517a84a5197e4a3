-- When the stored profile was last read from WeChat, and whether it can no longer be
-- refreshed (its refresh token expired or was refused): the person must authorize again.
ALTER TABLE identities ADD COLUMN profile_at BIGINT;
ALTER TABLE identities ADD COLUMN profile_stale BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE identities SET profile_at = updated_at WHERE profile IS NOT NULL;
