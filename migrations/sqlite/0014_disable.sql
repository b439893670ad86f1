-- An operator can disable an app (its sockets are refused and closed; no calls or provider
-- messages go to it) or a channel number (treated as not provisioned: nothing is sent from it,
-- nothing received on it) without deleting anything, and enable it again. NULL: enabled.
ALTER TABLE apps ADD COLUMN disabled_at BIGINT;
ALTER TABLE channel_numbers ADD COLUMN disabled_at BIGINT;
