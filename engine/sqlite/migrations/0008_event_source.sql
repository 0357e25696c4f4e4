-- How orderstate learned each event: 'webhook' when the provider sent it,
-- 'poll' when orderstate asked the provider's API (see engine.Poller). The
-- events stored before all came as webhooks.
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT 'webhook';
