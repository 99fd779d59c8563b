-- Administration (issue 15): the admin credential, an audit log of admin changes, and a
-- bounded log of SP hand-overs (accepted and refused) for the console. SQLite dialect.

-- The admin credential (`control-server admin-token`): one row, a salted SHA-256 of the token.
CREATE TABLE admin_credentials (
    id         TEXT PRIMARY KEY NOT NULL,
    salt       BLOB NOT NULL,
    hash       BLOB NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every admin change (CLI or admin API), in commit order. A running server follows this
-- table (and `history`) to drop cached mapping rows changed by another process.
CREATE TABLE admin_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    action    TEXT NOT NULL,
    device_id TEXT,
    detail    TEXT NOT NULL
);
CREATE INDEX admin_log_by_device ON admin_log (device_id, id);

-- The most recent SP hand-overs (`POST /v1/sp/associations`) with their outcome; pruned to
-- the newest rows on insert (control_server::admin::HANDOVER_LOG_KEEP).
CREATE TABLE handover_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         BIGINT NOT NULL,
    accepted   INTEGER NOT NULL,
    sender     TEXT,
    new_sp     TEXT,
    devices    BIGINT NOT NULL,
    changed    BIGINT NOT NULL,
    events     BIGINT NOT NULL,
    code       TEXT NOT NULL,
    reason     TEXT NOT NULL,
    message_id TEXT NOT NULL
);
