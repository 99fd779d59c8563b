-- Issue 13: an acknowledgement is one row per gateway (its acknowledged position), not an
-- UPDATE over every retained outbox row at or below it. `pruned_at` (unix ms) is when that
-- gateway's acknowledged rows were last pruned, so pruning runs at most once per interval.
-- The outbox's `acked` column is no longer written: `seq <= acked_seq` is the acknowledged set.
CREATE TABLE outbox_acks (
    gateway_id TEXT PRIMARY KEY NOT NULL,
    acked_seq  BIGINT NOT NULL DEFAULT 0,
    pruned_at  BIGINT NOT NULL DEFAULT 0
) WITHOUT ROWID;

INSERT INTO outbox_acks (gateway_id, acked_seq, pruned_at)
    SELECT gateway_id, MAX(seq), 0 FROM outbox WHERE acked = 1 GROUP BY gateway_id;
