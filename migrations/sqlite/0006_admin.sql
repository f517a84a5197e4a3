-- The admin pages find a person by openid alone (any app); the primary key starts with app.
CREATE INDEX identities_openid ON identities (openid);
