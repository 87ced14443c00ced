// Command snapshot copies the sql/ code package into the snapshot that the newest snapshot-installing
// migration installs: the highest migrations/NNN_*.sql containing {{ install_snapshot "NAME" }} names
// migrations/snapshots/NAME/. While that migration is unreleased, its snapshot tracks sql/; once it is
// released, a change to sql/ needs a new migration that installs a new snapshot. `make snapshot` runs
// it from the repository root.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"

	"github.com/jackc/tern/v2/migrate"
)

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "snapshot:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	migrationsDir, sqlDir := filepath.Join(root, "migrations"), filepath.Join(root, "sql")
	name, migration, err := LatestSnapshot(os.DirFS(migrationsDir))
	if err != nil {
		return err
	}
	dest := filepath.Join(migrationsDir, "snapshots", name)
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	changes, err := Diff(os.DirFS(sqlDir), os.DirFS(dest))
	if err != nil {
		return err
	}
	for _, c := range changes {
		target := filepath.Join(dest, c.File)
		switch c.Kind {
		case Removed:
			err = os.Remove(target)
		default:
			var data []byte
			if data, err = os.ReadFile(filepath.Join(sqlDir, c.File)); err == nil {
				err = os.WriteFile(target, data, 0o644)
			}
		}
		if err != nil {
			return err
		}
		fmt.Printf("%s %s\n", c.Kind, target)
	}
	fmt.Printf("migrations/snapshots/%s (installed by %s) matches sql/: %d file(s) updated\n", name, migration, len(changes))
	return nil
}

var installSnapshot = regexp.MustCompile(`{{-?\s*install_snapshot\s+"([^"]+)"`)

// LatestSnapshot returns the snapshot name installed by the highest-numbered migration that installs
// one, and that migration's file name.
func LatestSnapshot(migrations fs.FS) (name, migration string, err error) {
	paths, err := migrate.FindMigrations(migrations)
	if err != nil {
		return "", "", err
	}
	for i := len(paths) - 1; i >= 0; i-- {
		body, err := fs.ReadFile(migrations, paths[i])
		if err != nil {
			return "", "", err
		}
		if m := installSnapshot.FindSubmatch(body); m != nil {
			return string(m[1]), paths[i], nil
		}
	}
	return "", "", errors.New(`no migration contains {{ install_snapshot "NAME" }}`)
}

// Kind says how a snapshot file differs from sql/.
type Kind string

const (
	Added   Kind = "added"   // in sql/, not in the snapshot
	Changed Kind = "changed" // in both, with different bytes
	Removed Kind = "removed" // in the snapshot, not in sql/
)

// Change is one file to copy or delete to make the snapshot equal sql/.
type Change struct {
	Kind Kind
	File string
}

// Diff compares the *.sql files of the code package (sql/) and a snapshot directory.
func Diff(code, snapshot fs.FS) ([]Change, error) {
	want, err := sqlFiles(code)
	if err != nil {
		return nil, err
	}
	have, err := sqlFiles(snapshot)
	if err != nil {
		return nil, err
	}
	var changes []Change
	for name, data := range want {
		old, ok := have[name]
		switch {
		case !ok:
			changes = append(changes, Change{Added, name})
		case !bytes.Equal(old, data):
			changes = append(changes, Change{Changed, name})
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			changes = append(changes, Change{Removed, name})
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].File < changes[j].File })
	return changes, nil
}

// sqlFiles reads the *.sql files at the top of fsys (a code package is flat).
func sqlFiles(fsys fs.FS) (map[string][]byte, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		if files[e.Name()], err = fs.ReadFile(fsys, e.Name()); err != nil {
			return nil, err
		}
	}
	return files, nil
}
