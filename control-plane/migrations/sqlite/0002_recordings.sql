-- The recordings catalog: one row per recording an origin reports.
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    channel TEXT NOT NULL,
    recording TEXT NOT NULL,
    node TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    duration_ms INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    segment_count INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    location TEXT NOT NULL,
    playlist TEXT NOT NULL,
    deleted_at INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (channel, recording)
);
CREATE INDEX recordings_channel ON recordings (channel, started_ms);
CREATE INDEX recordings_deleted ON recordings (node, deleted_at);
