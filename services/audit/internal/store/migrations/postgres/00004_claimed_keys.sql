-- Idempotency keys of appends join the replay keys of webhooks: both are
-- keys a tenant's append may claim once, kept until they expire.

-- +goose Up
ALTER TABLE webhook_replays RENAME TO claimed_keys;

-- +goose Down
ALTER TABLE claimed_keys RENAME TO webhook_replays;
