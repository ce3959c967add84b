-- Skyrelay control plane, initial schema (SQLite). Times are unix milliseconds;
-- flags are 0/1 integers so the same queries run on SQLite and PostgreSQL.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE channels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    private INTEGER NOT NULL,
    recording INTEGER NOT NULL,
    tokens_not_before INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE stream_keys (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel_id INTEGER NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX stream_keys_channel ON stream_keys(channel_id);

CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    region TEXT NOT NULL,
    public_url TEXT NOT NULL,
    rtmp_url TEXT,
    relay_addr TEXT,
    registered_at INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    viewers INTEGER NOT NULL,
    egress_bps INTEGER NOT NULL,
    cpu REAL NOT NULL
);

CREATE TABLE live (
    channel TEXT PRIMARY KEY,
    node TEXT,
    since INTEGER NOT NULL,
    version INTEGER NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_pkcs8 TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    retired_at INTEGER
);
