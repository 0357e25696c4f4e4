package engine_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/orderstate/orderstate/engine"
)

func TestSchemaVersion(t *testing.T) {
	t.Parallel()
	require.Equal(t, 7, engine.SchemaVersion("migrations/0007_retention.sql"))
	require.Equal(t, 12, engine.SchemaVersion("0012.sql"))
	require.Equal(t, 0, engine.SchemaVersion("init.sql"))
}

func TestCheckSchema(t *testing.T) {
	t.Parallel()
	known := []string{"migrations/0001_init.sql", "migrations/0002_more.sql"}
	require.NoError(t, engine.CheckSchema("database o.db", nil, known), "a new store")
	require.NoError(t, engine.CheckSchema("database o.db", known[:1], known), "an older store, to migrate")
	require.NoError(t, engine.CheckSchema("database o.db", known, known))

	err := engine.CheckSchema("database o.db", append(known, "migrations/0003_future.sql"), known)
	require.Equal(t, engine.ECONFLICT, engine.ErrorCode(err))
	require.Contains(t, engine.ErrorMessage(err), "database o.db has schema version 3 (migration 0003_future.sql), newer than version 2, the newest this build of orderstate knows")

	err = engine.CheckSchema("database o.db", []string{"migrations/0001_init.sql", "migrations/0002_other.sql"}, known)
	require.Equal(t, engine.ECONFLICT, engine.ErrorCode(err))
	require.Contains(t, engine.ErrorMessage(err), "has migration 0002_other.sql (schema version 2), which this build of orderstate (schema version 2) does not know")
}
