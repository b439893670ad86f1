-- Indexes for bulk sends and the notifications they cause.

-- Only replayed and provider-reported messages carry a provider id; messages Hodi sends do not.
-- A partial index keeps those out of it: one B-tree fewer to write per sent message.
DROP INDEX messages_by_provider_id;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (org_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- The dispatcher reads an app's oldest notifications first. By (app_id) alone the index is in seq
-- (rowid) order within an app, so the read stops after its batch; through outbox_by_customer it
-- had to read and sort every queued notification of the app on every pass.
CREATE INDEX outbox_by_app ON outbox (app_id);
