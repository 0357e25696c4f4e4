package powercut

import (
	"database/sql"
	"path/filepath"
	"testing"
)

// BenchmarkSQLiteCommit measures one-row commits with synchronous=FULL,
// on the backing directory itself and through the mount.
func BenchmarkSQLiteCommit(b *testing.B) {
	for _, through := range []string{"direct", "mount"} {
		b.Run(through, func(b *testing.B) {
			dir := b.TempDir()
			if through == "mount" {
				mp := b.TempDir()
				f, err := Mount(dir, mp, Options{Passthrough: SQLiteShm})
				if err != nil {
					b.Fatal(err)
				}
				defer func() {
					if err := f.Unmount(); err != nil {
						b.Error(err)
					}
				}()
				dir = mp
			}
			db, err := sql.Open("sqlite", dsn(filepath.Join(dir, "db.sqlite"), "FULL"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			db.SetMaxOpenConns(1)
			if _, err := db.Exec(schema); err != nil {
				b.Fatal(err)
			}
			payload := make([]byte, 300)
			b.ResetTimer()
			for i := range b.N {
				if _, err := db.Exec(`INSERT INTO rows(id, cycle, payload) VALUES(?, 0, ?)`, i+1, payload); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
		})
	}
}

// BenchmarkMountCut measures a mount followed by a cut.
func BenchmarkMountCut(b *testing.B) {
	backing, mp := b.TempDir(), b.TempDir()
	for range b.N {
		f, err := Mount(backing, mp, Options{Passthrough: SQLiteShm})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.Cut(true); err != nil {
			b.Fatal(err)
		}
		<-f.Done()
	}
}
