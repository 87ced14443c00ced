# tollgate: `make help` lists the targets.

GO ?= go

.DEFAULT_GOAL := help
.PHONY: help test build vet fmt demo snapshot docs tools

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-9s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## run every test (starts throwaway PostgreSQL clusters; needs Debian's postgresql package)
	$(GO) test -race -count=1 ./...

build: ## build the tollgate CLI into bin/tollgate
	$(GO) build -o bin/tollgate ./cmd/tollgate

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt every Go file
	gofmt -w .

demo: ## run tollgate end to end against a throwaway PostgreSQL
	$(GO) run ./cmd/tollgate demo

snapshot: ## copy sql/ into the newest migrations/snapshots/NNN (the one the newest snapshot migration installs)
	$(GO) run ./internal/cmd/snapshot

docs: ## regenerate docs/sql-api.md from the catalog's COMMENT ON (a throwaway migrated database)
	$(GO) run ./internal/cmd/sqldocs

tools: ## build the pinned test tools (stripe-mock, ...) into ~/.cache/tollgate/bin (scripts/tools.sh)
	scripts/tools.sh
