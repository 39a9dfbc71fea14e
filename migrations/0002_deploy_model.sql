-- The deploy model: registries, projects, stages and their env and volumes, instances,
-- deploys with steps and log lines. Filled by the seed import and, later, by the deployer.

CREATE TABLE registries (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    url        TEXT NOT NULL,
    username   TEXT,
    secret_id  INTEGER REFERENCES secrets (id) ON DELETE SET NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE projects (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL UNIQUE,
    registry_id  INTEGER REFERENCES registries (id) ON DELETE SET NULL,
    image        TEXT NOT NULL,            -- registry/repository, no tag
    port         INTEGER NOT NULL CHECK (port BETWEEN 1 AND 65535),
    health       TEXT NOT NULL,            -- JSON HealthCheck
    memory_bytes INTEGER,
    cpus         REAL,
    labels       TEXT NOT NULL DEFAULT '{}', -- JSON object
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);

CREATE TABLE stages (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id    INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    tag_pattern   TEXT NOT NULL,
    auto_deploy   INTEGER NOT NULL DEFAULT 0,
    max_instances INTEGER NOT NULL DEFAULT 1 CHECK (max_instances BETWEEN 1 AND 50),
    promote_from  TEXT,                    -- a stage name of the same project
    confirm       INTEGER NOT NULL DEFAULT 0,
    subdomain     TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (project_id, name)
);

-- Project env (stage_id NULL) and per-stage overrides. A secret value lives in `secrets`.
CREATE TABLE env_vars (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stage_id   INTEGER REFERENCES stages (id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT,                       -- plain values only
    secret_id  INTEGER REFERENCES secrets (id) ON DELETE SET NULL,
    CHECK ((value IS NULL) <> (secret_id IS NULL))
);
CREATE UNIQUE INDEX env_vars_unique ON env_vars (project_id, COALESCE(stage_id, 0), key);

CREATE TABLE volumes (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    source     TEXT NOT NULL,
    target     TEXT NOT NULL,
    mode       TEXT NOT NULL CHECK (mode IN ('shared', 'isolated')),
    read_only  INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE deploys (
    id           TEXT PRIMARY KEY NOT NULL, -- UUIDv7: sorts by creation
    project_id   INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stage_id     INTEGER NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
    trigger      TEXT NOT NULL CHECK (trigger IN ('webhook', 'poll', 'manual', 'promote', 'rollback', 'quick')),
    actor        TEXT NOT NULL,
    image        TEXT NOT NULL,            -- the reference as requested
    tag          TEXT NOT NULL,
    digest       TEXT,                     -- resolved
    state        TEXT NOT NULL,            -- queued, resolving, pulling, … , succeeded, failed, …
    error        TEXT,
    created_at   TEXT NOT NULL,
    started_at   TEXT,
    finished_at  TEXT
);
CREATE INDEX deploys_stage ON deploys (stage_id, created_at);
CREATE INDEX deploys_state ON deploys (state);

CREATE TABLE deploy_steps (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_id   TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    step        TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed', 'skipped')),
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    message     TEXT
);
CREATE INDEX deploy_steps_deploy ON deploy_steps (deploy_id);

CREATE TABLE deploy_logs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_id TEXT NOT NULL REFERENCES deploys (id) ON DELETE CASCADE,
    at        TEXT NOT NULL,
    level     TEXT NOT NULL,
    line      TEXT NOT NULL
);
CREATE INDEX deploy_logs_deploy ON deploy_logs (deploy_id, id);

CREATE TABLE instances (
    id             TEXT PRIMARY KEY NOT NULL, -- UUIDv7
    project_id     INTEGER NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    stage_id       INTEGER NOT NULL REFERENCES stages (id) ON DELETE CASCADE,
    deploy_id      TEXT REFERENCES deploys (id) ON DELETE SET NULL,
    container_id   TEXT,
    container_name TEXT NOT NULL,
    tag            TEXT NOT NULL,
    digest         TEXT,
    subdomain      TEXT NOT NULL,
    status         TEXT NOT NULL,          -- starting, live, kept, stopped, removed, failed
    route_id       INTEGER,                -- the NPM proxy host id
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX instances_stage ON instances (stage_id, status);
