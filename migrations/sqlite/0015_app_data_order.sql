-- When an app-data value was written, in microseconds: a notification's answer is recorded with
-- its batch, after commands the app sent once it had answered; it writes only if nothing newer
-- was written (an app's later update must not be undone by its earlier answer). Microseconds:
-- milliseconds tie too often on one machine.
ALTER TABLE app_data ADD COLUMN written_us BIGINT NOT NULL DEFAULT 0;
