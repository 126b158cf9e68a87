-- `Outcome::Skipped`: the event is finished (state 'done') but was deliberately not applied; the reason is kept
-- so operators can see in `status` what was filtered and why. NULL for events that were applied.
ALTER TABLE inbox ADD COLUMN skip_reason TEXT;
