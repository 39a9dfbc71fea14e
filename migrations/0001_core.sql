-- berth core schema: settings, users, sessions, encrypted secrets, audit log.
-- Migrations are append-only: never edit one that has landed; add a new file.

CREATE TABLE settings (
    key        TEXT PRIMARY KEY NOT NULL,
    value      TEXT NOT NULL,              -- JSON
    updated_at TEXT NOT NULL
);

-- Encrypted values (credentials, secret env values). `blob` is nonce || ciphertext+tag,
-- sealed with the key whose id is `key_id`, bound to `context` as associated data.
CREATE TABLE secrets (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    context    TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    blob       BLOB NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX secrets_key_id ON secrets (key_id);

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT,                    -- argon2id PHC string; NULL for SSO-only users
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'deployer', 'admin')),
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);

-- Login sessions (browser cookies) and script tokens. Only the SHA-256 of the secret is kept.
CREATE TABLE sessions (
    token_hash   TEXT PRIMARY KEY NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind         TEXT NOT NULL CHECK (kind IN ('browser', 'script')),
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    ip           TEXT,
    user_agent   TEXT
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     TEXT NOT NULL,
    actor  TEXT NOT NULL,                  -- username, "system", or "anonymous"
    action TEXT NOT NULL,                  -- e.g. login.succeeded, settings.updated
    target TEXT,
    ip     TEXT,
    detail TEXT                            -- JSON, never secret values
);
CREATE INDEX audit_log_at ON audit_log (at);
