-- Last file of the package: record what was installed (tollgate.code_package,
-- migrations/006_code_package.sql).
--
-- current_query() is the whole text the client sent (the rendered package,
-- when it was sent as one string): tollgate migrate compares this hash with
-- the sha256 of the package it carries, and installs it again when they
-- differ. A package run statement by statement (psql -f) records another hash,
-- so the next tollgate migrate installs it again: harmless.
INSERT INTO tollgate.code_package AS c (singleton, sha256, installed_at)
VALUES (true,
        pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.current_query(), 'UTF8')), 'hex'),
        pg_catalog.now())
ON CONFLICT (singleton) DO UPDATE SET sha256 = EXCLUDED.sha256, installed_at = EXCLUDED.installed_at;
