# tollgate: `make help` lists the targets.

GO ?= go

.DEFAULT_GOAL := help
.PHONY: help test test-citus build vet fmt demo dev bench fuzz schema release-fixture docs tools

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## run every test but the Citus ones: installs what is missing first (Debian packages as root, pinned test tools), then go test
	scripts/deps.sh test
	scripts/tools.sh
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/tests/citus$$')

CITUS_SRC ?= ../shared/citus
test-citus: ## the tests on a Citus cluster on this machine (docs/scaling.md): builds Citus from ../shared/citus first (once per machine)
	@if [ -x $(CITUS_SRC)/build.sh ]; then $(CITUS_SRC)/build.sh; else echo "no $(CITUS_SRC)/build.sh: the tests skip unless Citus is installed"; fi
	$(GO) test -race -count=1 -timeout 45m ./tests/citus/...

build: ## build the tollgate CLI into bin/tollgate
	$(GO) build -o bin/tollgate ./cmd/tollgate

vet: ## go vet
	$(GO) vet ./...

fmt: ## gofmt every Go file
	gofmt -w .

demo: ## play the whole loop on a throwaway PostgreSQL (installs Debian's postgresql first when root)
	scripts/deps.sh demo
	$(GO) run ./cmd/tollgate demo

dev: ## run PostgreSQL (data in .tollgate/dev) and the sidecar for development, until Ctrl-C
	scripts/deps.sh demo
	$(GO) run ./cmd/tollgate dev

bench: ## tollgate bench (consume against baselines, 10s per scenario) and the Go benchmarks of the sidecar
	$(GO) run ./cmd/tollgate bench
	$(GO) test -run '^$$' -bench . ./sidecar/...

fuzz: ## search for inputs that crash the tollgate.yaml parser (60s)
	$(GO) test ./internal/config -run '^$$' -fuzz=FuzzParse -fuzztime=60s

schema: ## regenerate schema/tollgate.sql: the pg_dump of a freshly migrated database (TestSchemaDumpCurrent checks it)
	$(GO) run ./internal/cmd/schemadump

release-fixture: ## capture the schema of release VERSION for the upgrade test: make release-fixture VERSION=0.1.0
	@test -n "$(VERSION)" || { echo 'usage: make release-fixture VERSION=0.1.0' >&2; exit 2; }
	$(GO) run ./internal/cmd/schemadump -release $(VERSION)

docs: ## regenerate docs/sql-api.md from the catalog's COMMENT ON (a throwaway migrated database)
	$(GO) run ./internal/cmd/sqldocs

tools: ## build the pinned test tools (stripe-mock, ...) into ~/.cache/tollgate/bin (scripts/tools.sh)
	scripts/tools.sh
