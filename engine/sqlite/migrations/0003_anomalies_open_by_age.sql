-- The report lists each kind's open anomalies newest first, a few hundred
-- of tens of thousands: with the time in the index that is a walk along it
-- instead of a sort of every open anomaly of the kind.
DROP INDEX anomalies_status;
CREATE INDEX anomalies_status ON anomalies (status, kind, opened_at);
