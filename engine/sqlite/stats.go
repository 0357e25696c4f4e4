package sqlite

import "context"

// OpenAnomalyCounts returns how many anomalies of each kind are open. It
// reads only the (status, kind) index, so a metrics scrape stays cheap
// however many anomalies the store holds. Like every read it counts only
// what is on disk, waiting for a flush under way if it saw its commit.
func (db *DB) OpenAnomalyCounts(ctx context.Context) (map[string]int, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	rows, err := db.read.QueryContext(ctx, `SELECT kind, COUNT(*) FROM anomalies INDEXED BY anomalies_status
		WHERE status = 'open' GROUP BY kind`)
	if err != nil {
		return nil, storeError(err, "count open anomalies")
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, storeError(err, "count open anomalies")
		}
		out[kind] = n
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(err, "count open anomalies")
	}
	return out, db.awaitDurable(ctx)
}
