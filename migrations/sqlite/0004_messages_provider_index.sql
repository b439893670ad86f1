-- Only replayed and provider-reported messages carry a provider id; messages Hodi sends do not.
-- A partial index keeps those out of it: one B-tree fewer to write per sent message.
DROP INDEX messages_by_provider_id;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (org_id, provider_message_id)
    WHERE provider_message_id IS NOT NULL;
