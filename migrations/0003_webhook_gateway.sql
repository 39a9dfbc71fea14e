-- The webhook gateway: one secret per source (registry or forge), and every delivery with
-- what became of it, so an operator can see why a push did nothing.

CREATE TABLE hook_sources (
    source     TEXT PRIMARY KEY NOT NULL,  -- github, gitea, dockerhub, …
    secret_id  INTEGER NOT NULL REFERENCES secrets (id),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    delivery_id TEXT,                      -- the sender's own id, when it sends one
    received_at TEXT NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('accepted', 'ignored', 'rejected', 'duplicate')),
    reason      TEXT,
    image       TEXT,                      -- registry/org/app:tag, for pushes
    digest      TEXT,
    deploys     TEXT NOT NULL DEFAULT '[]', -- JSON array of deploy ids it queued
    ip          TEXT
);
-- A sender's retry of a delivery that was taken (accepted or ignored) is a duplicate.
CREATE UNIQUE INDEX deliveries_once ON deliveries (source, delivery_id)
    WHERE delivery_id IS NOT NULL AND outcome IN ('accepted', 'ignored');
CREATE INDEX deliveries_by_image ON deliveries (image, digest, received_at);
