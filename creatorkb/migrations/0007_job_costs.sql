-- Savings per job, not per call: each decision records what its job cost (its calls' cloud
-- dollars and energy) and `all_cloud_usd`, what one direct call on the reference model would
-- have cost for it (the direct prompt, its system prompt read from the cache as a steady
-- all-cloud setup reads it, and the final answer's tokens). The report's savings are
-- sum(all_cloud_usd - cloud_usd - energy_usd) over the week's decisions. Rows written before
-- this migration have nulls: they are left out of savings, not guessed.
ALTER TABLE routing_decisions ADD COLUMN all_cloud_usd DECIMAL(20, 12);
ALTER TABLE routing_decisions ADD COLUMN cloud_usd DECIMAL(20, 12);
ALTER TABLE routing_decisions ADD COLUMN energy_usd DECIMAL(20, 12);
