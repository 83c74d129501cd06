-- Savings per job, not per call: each decision records what its job cost (its calls' cloud
-- dollars and energy) and `all_cloud_usd`, what one direct call on the reference model would
-- have cost for it (the direct prompt, its system prompt read from the cache as a steady
-- all-cloud setup reads it, and the final answer's tokens). The report's savings are
-- sum(all_cloud_usd - cloud_usd - energy_usd) over the week's decisions. Rows written before
-- this migration have nulls: they are left out of savings, not guessed.
ALTER TABLE routing_decisions ADD COLUMN all_cloud_usd DECIMAL(20, 12);
ALTER TABLE routing_decisions ADD COLUMN cloud_usd DECIMAL(20, 12);
ALTER TABLE routing_decisions ADD COLUMN energy_usd DECIMAL(20, 12);

-- A cloud call is recorded before it is sent: its reservation carries `sent_at`, the model
-- and the purpose. A reservation whose answer never came back (the process was killed, or
-- the client gave up waiting) stays open as the bound of what may have been billed: the
-- budget keeps counting it for its week and the report shows it as "possibly billed".
ALTER TABLE budget_reservations ADD COLUMN sent_at TIMESTAMPTZ;
ALTER TABLE budget_reservations ADD COLUMN model VARCHAR;
ALTER TABLE budget_reservations ADD COLUMN purpose VARCHAR;
