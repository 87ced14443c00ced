# tollgate: `make help` lists the targets.

GO ?= go

.DEFAULT_GOAL := help
.PHONY: help test test-citus build vet fmt demo dev bench fuzz schema release-fixture docs tools

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z][a-z-]*:.*## / {printf "  make %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

test: ## run every test: installs what is missing first (Debian packages as root, pinned test tools), then go test, every fuzz target for 3000 inputs, and the Citus tests (test-citus)
	scripts/deps.sh test
	scripts/tools.sh
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v '/tests/citus$$')
	scripts/fuzz.sh 3000x
	$(MAKE) test-citus

CITUS_SRC ?= ../shared/citus
test-citus: ## the tests on a Citus cluster on this machine (docs/scaling.md): builds Citus from ../shared/citus first (once per machine); they skip, saying so, without Citus
	@if [ -x $(CITUS_SRC)/build.sh ]; then $(CITUS_SRC)/build.sh; else echo "no $(CITUS_SRC)/build.sh: the Citus tests skip unless Citus is installed"; fi
	$(GO) test -count=1 -timeout 20m ./tests/citus/...

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
	$(GO) build -o bin/tollgate ./cmd/tollgate
	@# the binary itself, not `go run`: go run answers Ctrl-C with exit status 1 even when tollgate stopped cleanly
	bin/tollgate dev

bench: ## tollgate bench (consume against baselines, 10s per scenario) and the Go benchmarks of the sidecar
	$(GO) run ./cmd/tollgate bench
	$(GO) test -run '^$$' -bench . ./sidecar/...

fuzz: ## run every Go fuzz target (tollgate.yaml, tollgate apply, the Stripe webhook) for FUZZTIME each (2m)
	scripts/fuzz.sh $(or $(FUZZTIME),2m)

schema: ## regenerate schema/tollgate.sql: the pg_dump of a freshly migrated database (TestSchemaDumpCurrent checks it)
	$(GO) run ./internal/cmd/schemadump

release-fixture: ## capture the schema of release VERSION for the upgrade test: make release-fixture VERSION=0.1.0
	@test -n "$(VERSION)" || { echo 'usage: make release-fixture VERSION=0.1.0' >&2; exit 2; }
	$(GO) run ./internal/cmd/schemadump -release $(VERSION)

docs: ## regenerate docs/sql-api.md from the catalog's COMMENT ON (a throwaway migrated database)
	$(GO) run ./internal/cmd/sqldocs

tools: ## build the pinned test tools (stripe-mock, ...) into ~/.cache/tollgate/bin (scripts/tools.sh)
	scripts/tools.sh
