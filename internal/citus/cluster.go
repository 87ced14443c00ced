package citus

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Node is a node of a Citus cluster as its coordinator reaches it (pg_dist_node).
type Node struct {
	Group int // 0: the coordinator
	Host  string
	Port  int
}

// Nodes lists the active primary nodes of the cluster of the database q is connected to: the
// coordinator (group 0), then the workers.
func Nodes(ctx context.Context, q Querier) (coordinator Node, workers []Node, err error) {
	has, err := HasExtension(ctx, q)
	if err != nil {
		return Node{}, nil, err
	}
	if !has {
		return Node{}, nil, ErrNoCitus
	}
	var groups []int32
	var hosts []string
	var ports []int32
	err = q.QueryRow(ctx, `SELECT coalesce(array_agg(n.groupid ORDER BY n.groupid, n.nodeid), '{}'),
	                              coalesce(array_agg(n.nodename ORDER BY n.groupid, n.nodeid), '{}'),
	                              coalesce(array_agg(n.nodeport ORDER BY n.groupid, n.nodeid), '{}')
	                         FROM pg_catalog.pg_dist_node n WHERE n.isactive AND n.noderole = 'primary'`).Scan(&groups, &hosts, &ports)
	if err != nil {
		return Node{}, nil, fmt.Errorf("citus: read the cluster's nodes: %w", err)
	}
	found := false
	for i := range groups {
		n := Node{Group: int(groups[i]), Host: hosts[i], Port: int(ports[i])}
		if n.Group == 0 {
			coordinator, found = n, true
		} else {
			workers = append(workers, n)
		}
	}
	if !found {
		return Node{}, nil, errors.New("citus: the coordinator is not in the cluster's metadata (citus_set_coordinator_host)")
	}
	return coordinator, workers, nil
}

// NodeURL is connString (a postgres:// URL or key=value string) pointed at a node and a database,
// with the same user and password.
func NodeURL(connString string, n Node, dbname string) (string, error) {
	if strings.HasPrefix(connString, "postgres://") || strings.HasPrefix(connString, "postgresql://") {
		u, err := url.Parse(connString)
		if err != nil {
			return "", err
		}
		u.Host = net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
		u.Path = "/" + dbname
		q := u.Query()
		q.Del("host")
		q.Del("port")
		q.Del("dbname")
		u.RawQuery = q.Encode()
		return u.String(), nil
	}
	if strings.Contains(connString, "://") {
		return "", errors.New("not a postgres:// URL")
	}
	// key=value: a later key wins
	return fmt.Sprintf("%s host=%s port=%d dbname=%s", connString, quoteValue(n.Host), n.Port, quoteValue(dbname)), nil
}

func quoteValue(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), `'`, `\'`) + "'"
}

// CreateDatabase creates database name on every node of the Citus cluster whose coordinator adminURL
// connects to (a superuser, in a database that has the citus extension and knows the nodes), creates
// the citus extension in each, and joins them into a cluster of that database: Citus keeps the nodes of
// a cluster per database. It returns the new database's URL on the coordinator. On failure it removes
// what it created.
func CreateDatabase(ctx context.Context, adminURL, name string) (string, error) {
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return "", err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	coordinator, workers, err := Nodes(ctx, admin)
	if err != nil {
		return "", err
	}
	if len(workers) == 0 {
		return "", errors.New("citus: the cluster has no active worker")
	}
	ok := false
	defer func() {
		if !ok {
			DropDatabase(context.WithoutCancel(ctx), adminURL, name)
		}
	}()
	ident := pgx.Identifier{name}.Sanitize()
	for _, n := range append([]Node{coordinator}, workers...) {
		nodeAdmin, err := NodeURL(adminURL, n, adminDatabase(admin))
		if err != nil {
			return "", err
		}
		nodeDB, err := NodeURL(adminURL, n, name)
		if err != nil {
			return "", err
		}
		if err := execOn(ctx, nodeAdmin, "CREATE DATABASE "+ident); err != nil {
			return "", fmt.Errorf("citus: create database on %s:%d: %w", n.Host, n.Port, err)
		}
		if err := execOn(ctx, nodeDB, "CREATE EXTENSION citus"); err != nil {
			return "", fmt.Errorf("citus: create extension on %s:%d: %w", n.Host, n.Port, err)
		}
	}
	dbURL, err := NodeURL(adminURL, coordinator, name)
	if err != nil {
		return "", err
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.citus_set_coordinator_host($1, $2)", coordinator.Host, coordinator.Port); err != nil {
		return "", fmt.Errorf("citus: set the coordinator: %w", err)
	}
	for _, w := range workers {
		if _, err := conn.Exec(ctx, "SELECT pg_catalog.citus_add_node($1, $2)", w.Host, w.Port); err != nil {
			return "", fmt.Errorf("citus: add worker %s:%d: %w", w.Host, w.Port, err)
		}
	}
	ok = true
	return dbURL, nil
}

// DropDatabase drops database name from every node of the cluster whose coordinator adminURL connects
// to (see CreateDatabase), ignoring nodes where it does not exist.
func DropDatabase(ctx context.Context, adminURL, name string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	admin, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer admin.Close(context.WithoutCancel(ctx))
	coordinator, workers, err := Nodes(ctx, admin)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range append([]Node{coordinator}, workers...) {
		nodeAdmin, err := NodeURL(adminURL, n, adminDatabase(admin))
		if err == nil {
			err = execOn(ctx, nodeAdmin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", n.Host, n.Port, err))
		}
	}
	return errors.Join(errs...)
}

func adminDatabase(conn *pgx.Conn) string { return conn.Config().Database }

func execOn(ctx context.Context, connURL, sql string) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}
