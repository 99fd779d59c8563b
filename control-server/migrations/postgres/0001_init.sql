-- Control server schema (PostgreSQL dialect). Times are unix milliseconds (BIGINT) so both
-- dialects store and compare them the same way.
CREATE TABLE gateways (
    id              TEXT PRIMARY KEY NOT NULL,
    credential_salt BYTEA NOT NULL,
    credential_hash BYTEA NOT NULL,
    revoked         BOOLEAN NOT NULL DEFAULT FALSE,
    geo_lat         DOUBLE PRECISION,
    geo_lon         DOUBLE PRECISION,
    last_seq        BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);

CREATE TABLE sps (
    identity    TEXT PRIMARY KEY NOT NULL,
    base_url    TEXT NOT NULL,
    public_key  BYTEA NOT NULL,
    may_release BOOLEAN NOT NULL DEFAULT FALSE,
    may_claim   BOOLEAN NOT NULL DEFAULT FALSE,
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
);

CREATE TABLE mapping_gateways (
    device_id  TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    PRIMARY KEY (device_id, gateway_id)
);

CREATE TABLE history (
    id         BIGSERIAL PRIMARY KEY,
    device_id  TEXT NOT NULL,
    old_sp     TEXT,
    new_sp     TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    message_id TEXT,
    at         BIGINT NOT NULL
);
CREATE INDEX history_by_device ON history (device_id, at);

CREATE TABLE seen_nonces (
    nonce   BYTEA PRIMARY KEY NOT NULL,
    sender  TEXT NOT NULL,
    seen_at BIGINT NOT NULL
);
CREATE INDEX seen_nonces_by_time ON seen_nonces (seen_at);

CREATE TABLE outbox (
    gateway_id TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    acked      BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (gateway_id, seq)
);
