-- The recordings catalog: one row per recording an origin reports.
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recording TEXT NOT NULL,
    node TEXT NOT NULL,
    started_ms BIGINT NOT NULL,
    ended_ms BIGINT,
    duration_ms BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    segment_count BIGINT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    location TEXT NOT NULL,
    playlist TEXT NOT NULL,
    deleted_at BIGINT,
    updated_at BIGINT NOT NULL,
    UNIQUE (channel, recording)
);
CREATE INDEX recordings_channel ON recordings (channel, started_ms);
CREATE INDEX recordings_deleted ON recordings (node, deleted_at);
