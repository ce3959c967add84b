-- Skyrelay control plane, initial schema (PostgreSQL). Times are unix milliseconds;
-- flags are 0/1 integers so the same queries run on SQLite and PostgreSQL.
CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);

CREATE TABLE channels (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    owner_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    private BIGINT NOT NULL,
    recording BIGINT NOT NULL,
    tokens_not_before BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE stream_keys (
    id BIGSERIAL PRIMARY KEY,
    channel_id BIGINT NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
    key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX stream_keys_channel ON stream_keys(channel_id);

CREATE TABLE nodes (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    region TEXT NOT NULL,
    public_url TEXT NOT NULL,
    rtmp_url TEXT,
    relay_addr TEXT,
    registered_at BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL,
    viewers BIGINT NOT NULL,
    egress_bps BIGINT NOT NULL,
    cpu DOUBLE PRECISION NOT NULL
);

CREATE TABLE live (
    channel TEXT PRIMARY KEY,
    node TEXT,
    since BIGINT NOT NULL,
    version BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    private_pkcs8 TEXT NOT NULL,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    retired_at BIGINT
);
