package engine

import (
	"path"
	"slices"
	"strconv"
	"strings"
)

// SchemaVersion is the version a migration file's name gives the schema
// it leaves: its leading number ("0007_retention.sql" is 7); 0 for a name
// without one.
func SchemaVersion(name string) int {
	base := path.Base(name)
	end := strings.IndexFunc(base, func(r rune) bool { return r < '0' || r > '9' })
	if end < 0 {
		end = len(base)
	}
	n, err := strconv.Atoi(base[:end])
	if err != nil {
		return 0
	}
	return n
}

// CheckSchema refuses a store that a newer build migrated: one whose
// applied migrations (the names its migrations table holds) include a
// version above the highest of known, this build's. Such a store may
// hold tables, columns or rows this build would misread or damage, so the
// store must not be opened. store names it in the message, which gives
// both versions. Returns ECONFLICT.
func CheckSchema(store string, applied, known []string) error {
	have, want := 0, 0
	newest := ""
	for _, name := range applied {
		if v := SchemaVersion(name); v > have {
			have, newest = v, path.Base(name)
		}
	}
	for _, name := range known {
		want = max(want, SchemaVersion(name))
	}
	if have > want {
		return Errorf(ECONFLICT, "%s has schema version %d (migration %s), newer than version %d, the newest this build of orderstate knows: "+
			"a newer release migrated it; run that release or a later one, or restore a backup taken before the upgrade", store, have, newest, want)
	}
	// A migration of a version this build knows, under a name it does not,
	// comes from another line of development: its schema is not this
	// build's either.
	for _, name := range applied {
		base := path.Base(name)
		if !slices.ContainsFunc(known, func(k string) bool { return path.Base(k) == base }) {
			return Errorf(ECONFLICT, "%s has migration %s (schema version %d), which this build of orderstate (schema version %d) does not know: "+
				"it was migrated by another build; run that build", store, base, SchemaVersion(name), want)
		}
	}
	return nil
}
