-- Single sign-on: which provider identity (issuer + subject) is which berth user. A user
-- is found by this link, never by a name the provider lets its users choose.
CREATE TABLE user_identities (
    issuer        TEXT NOT NULL,
    subject       TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at    TEXT NOT NULL,
    last_login_at TEXT NOT NULL,
    PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);

-- Per-stage webhook secrets: a CI pipeline given one can deploy only that stage. Only the
-- SHA-256 of the secret is kept.
CREATE TABLE stage_webhooks (
    stage_id    INTEGER PRIMARY KEY NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
    secret_hash TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
