-- Control server schema (SQLite dialect). Times are unix milliseconds (BIGINT) so both
-- dialects store and compare them the same way. Tables keyed by text are WITHOUT ROWID:
-- the primary key is the table, so a 100,000-device change writes each row once.
CREATE TABLE gateways (
    id              TEXT PRIMARY KEY NOT NULL,
    credential_salt BLOB NOT NULL,
    credential_hash BLOB NOT NULL,
    revoked         INTEGER NOT NULL DEFAULT 0,
    geo_lat         REAL,
    geo_lon         REAL,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE sps (
    identity    TEXT PRIMARY KEY NOT NULL,
    base_url    TEXT NOT NULL,
    public_key  BLOB NOT NULL,
    may_release INTEGER NOT NULL DEFAULT 0,
    may_claim   INTEGER NOT NULL DEFAULT 0,
    may_move_to TEXT NOT NULL DEFAULT '[]'
);

CREATE TABLE mapping (
    device_id    TEXT PRIMARY KEY NOT NULL,
    sp           TEXT NOT NULL,
    service_type TEXT,
    access       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    validated_at BIGINT NOT NULL
) WITHOUT ROWID;

CREATE TABLE mapping_gateways (
    device_id  TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    PRIMARY KEY (device_id, gateway_id)
) WITHOUT ROWID;

CREATE TABLE history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL,
    old_sp     TEXT,
    new_sp     TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    message_id TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX history_by_device ON history (device_id, at);

CREATE TABLE seen_nonces (
    nonce   BLOB PRIMARY KEY NOT NULL,
    sender  TEXT NOT NULL,
    seen_at BIGINT NOT NULL
) WITHOUT ROWID;
CREATE INDEX seen_nonces_by_time ON seen_nonces (seen_at);

CREATE TABLE outbox (
    gateway_id TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    acked      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (gateway_id, seq)
) WITHOUT ROWID;
