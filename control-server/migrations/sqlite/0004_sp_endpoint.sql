-- Issue 12: what a device needs to talk to its SP, handed out by the control server in
-- resolve answers and pushed association events (gateways no longer configure it).
-- `endpoint`: where the SP's devices and gateways reach it (device reports
-- `POST {endpoint}/v1/devices`, withdrawals, device messages); NULL for an SP registered
-- before this migration: enrolling a device to it fails with a hint to register one.
-- `device_public_key`: the Ed25519 key devices verify the SP's commands with; NULL means
-- the SP's registered `public_key` (the one its signed hand-overs are checked with).
ALTER TABLE sps ADD COLUMN endpoint TEXT;
ALTER TABLE sps ADD COLUMN device_public_key BLOB;
