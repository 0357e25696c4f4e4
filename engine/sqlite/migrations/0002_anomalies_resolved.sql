-- The report lists what was resolved or acknowledged in its period; without
-- this index that is a scan of every anomaly ever closed.
CREATE INDEX anomalies_resolved ON anomalies (resolved_at) WHERE resolved_at IS NOT NULL;
