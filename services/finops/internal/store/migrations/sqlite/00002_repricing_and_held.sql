-- Reads of the background re-pricing job and of the held-event admin API,
-- each a range of a small partial index (unpriced usage and held events
-- are the rare cases) rather than a pass over every row ever stored.

-- +goose Up
-- The re-pricing job's batches, in (tenant_id, job_id) order after a key.
CREATE INDEX usage_records_unpriced_key ON usage_records (tenant_id, job_id) WHERE NOT priced;
-- ListHeldStripeEvents, by event id.
CREATE INDEX stripe_events_held_id ON stripe_events (event_id) WHERE held;

-- +goose Down
DROP INDEX stripe_events_held_id;
DROP INDEX usage_records_unpriced_key;
