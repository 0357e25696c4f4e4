package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/orderstate/orderstate/engine"
)

// SaveReport stores a rendered report and returns its id.
func (db *DB) SaveReport(ctx context.Context, r engine.StoredReport) (int64, error) {
	var id int64
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO reports (created_at, period_start, period_end, json, markdown, html)
			VALUES (?, ?, ?, ?, ?, ?)`, formatTime(r.CreatedAt), formatTime(r.PeriodStart), formatTime(r.PeriodEnd),
			r.JSON, r.Markdown, r.HTML)
		if err != nil {
			return storeError(err, "save report")
		}
		id, err = res.LastInsertId()
		return storeError2(err, "save report")
	}, true)
	return id, err
}

// Reports lists stored reports, newest first, without their bodies.
func (db *DB) Reports(ctx context.Context, limit int) ([]engine.StoredReport, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.read.QueryContext(ctx, `SELECT id, created_at, period_start, period_end FROM reports ORDER BY id DESC LIMIT ?`, limit)
	if err != nil {
		return nil, storeError(err, "list reports")
	}
	defer rows.Close()
	out := []engine.StoredReport{}
	for rows.Next() {
		var r engine.StoredReport
		var c, s, e sql.NullString
		if err := rows.Scan(&r.ID, &c, &s, &e); err != nil {
			return nil, storeError(err, "list reports")
		}
		r.CreatedAt, r.PeriodStart, r.PeriodEnd = parseTime(c), parseTime(s), parseTime(e)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, storeError(err, "list reports")
	}
	return out, db.awaitDurable(ctx)
}

// Report returns one stored report with its renderings. Returns ENOTFOUND.
func (db *DB) Report(ctx context.Context, id int64) (*engine.StoredReport, error) {
	if err := db.closedError(); err != nil {
		return nil, err
	}
	var r engine.StoredReport
	var c, s, e sql.NullString
	err := db.read.QueryRowContext(ctx, `SELECT id, created_at, period_start, period_end, json, markdown, html FROM reports WHERE id = ?`, id).
		Scan(&r.ID, &c, &s, &e, &r.JSON, &r.Markdown, &r.HTML)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, engine.Errorf(engine.ENOTFOUND, "no report %d", id)
	} else if err != nil {
		return nil, storeError(err, "read report")
	}
	r.CreatedAt, r.PeriodStart, r.PeriodEnd = parseTime(c), parseTime(s), parseTime(e)
	return &r, db.awaitDurable(ctx)
}

// Watermark returns when the named job last completed (zero if never).
func (db *DB) Watermark(ctx context.Context, name string) (time.Time, error) {
	if err := db.closedError(); err != nil {
		return time.Time{}, err
	}
	var at sql.NullString
	err := db.read.QueryRowContext(ctx, `SELECT at FROM watermarks WHERE name = ?`, name).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, storeError(err, "read watermark")
	}
	return parseTime(at), nil
}

// SetWatermark records that the named job completed up to at.
func (db *DB) SetWatermark(ctx context.Context, name string, at time.Time) error {
	return db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO watermarks (name, at) VALUES (?, ?)
			ON CONFLICT (name) DO UPDATE SET at = excluded.at`, name, formatTime(at))
		return storeError2(err, "set watermark")
	}, true)
}
