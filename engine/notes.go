package engine

import (
	"strings"
	"unicode/utf8"
)

// The limits on what a person writes when acknowledging an anomaly, in
// characters: one note, and all of an anomaly's notes together.
const (
	MaxNote  = 2000
	MaxNotes = 20000
)

// CheckNote returns EINVALID for a note longer than MaxNote; every store
// calls it before it opens a transaction.
func CheckNote(note string) error {
	if n := utf8.RuneCountInString(note); n > MaxNote {
		return Errorf(EINVALID, "note is %d characters long; at most %d are kept", n, MaxNote)
	}
	return nil
}

// AddNote puts note on a line of its own below an anomaly's notes, unless it
// is empty or already the last one (a retried request), so a later ack never
// replaces what a colleague wrote. Returns EINVALID when the notes would pass
// MaxNotes.
func AddNote(id int64, notes, note string) (string, error) {
	var merged string
	switch {
	case note == "" || notes == note || strings.HasSuffix(notes, "\n"+note):
		merged = notes
	case notes == "":
		merged = note
	default:
		merged = notes + "\n" + note
	}
	if utf8.RuneCountInString(merged) > MaxNotes {
		return "", Errorf(EINVALID, "anomaly %d already holds %d characters of notes, and with this one they would pass %d; "+
			"acknowledge it without a note (its notes are in GET /v1/anomalies)", id, utf8.RuneCountInString(notes), MaxNotes)
	}
	return merged, nil
}
