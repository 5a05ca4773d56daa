# Volley — make targets. `make run` starts Volley locally; `make test` runs every test.
GO      ?= go
BIN     := bin
ADDR    ?= :8080
PKGS    := ./...

.PHONY: run build test verify generate bench chaos fuzz screenshots clean

MOCK_ADDR ?= 127.0.0.1:9090

## run: build and start Volley on $(ADDR) with the embedded PostgreSQL, printing a local API key.
## With no upstream configured (VOLLEY_UPSTREAM_URL, VOLLEY_CONFIG) it starts mockllm beside it, so
## a first batch completes (on $(MOCK_ADDR), or on a free port when that one is taken).
run: build
	@if [ -z "$$VOLLEY_UPSTREAM_URL$$VOLLEY_CONFIG" ]; then \
		rm -f $(BIN)/mockllm.addr; \
		./$(BIN)/mockllm -addr $(MOCK_ADDR) -any-port-if-taken -addr-file $(BIN)/mockllm.addr \
			-no-auth -latency 200ms -latency-jitter 150ms >/dev/null & \
		mock=$$!; trap 'kill $$mock 2>/dev/null' EXIT INT TERM; \
		for i in $$(seq 100); do [ -s $(BIN)/mockllm.addr ] || ! kill -0 $$mock 2>/dev/null && break; sleep 0.1; done; \
		[ -s $(BIN)/mockllm.addr ] || { echo "mockllm did not start"; exit 1; }; \
		export VOLLEY_UPSTREAM_URL=http://$$(cat $(BIN)/mockllm.addr)/v1; \
		echo "No upstream configured: every model goes to mockllm at $$VOLLEY_UPSTREAM_URL"; \
	fi; \
	VOLLEY_ADDR=$${VOLLEY_ADDR:-$(ADDR)} ./$(BIN)/volley serve --dev

## build: compile the binaries into ./bin
build:
	$(GO) build -o $(BIN)/ ./cmd/... ./internal/tools/cmd/...

## test: every test, against real PostgreSQL clusters the tests start themselves.
test:
	$(GO) test -count=1 -timeout 30m $(PKGS)

## generate: regenerate the HTTP layer from openapi.yaml and the queries from db/queries.
generate:
	$(GO) generate ./api/...
	$(GO) tool sqlc generate

## verify: regenerate and fail on any difference; gofmt and go vet.
verify: generate
	@git diff --exit-code -- api db sqlc.yaml || (echo "generated code is stale: run 'make generate' and commit" && exit 1)
	@test -z "$$(git status --porcelain -- api db)" || (git status --porcelain -- api db; echo "generated files are not committed" && exit 1)
	@fmt="$$(gofmt -l $$(git ls-files '*.go'))"; test -z "$$fmt" || (echo "gofmt needed:"; echo "$$fmt"; exit 1)
	$(GO) vet $(PKGS)

## screenshots: run the dashboard's browser tests and write a screenshot of each page to docs/screenshots
screenshots:
	SCREENSHOT_DIR=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run '^TestDashboard$$' ./internal/tools/e2e/

## bench: benchmarks with results written to docs/benchmarks.md
bench:
	$(GO) run ./internal/tools/cmd/volleybench -out docs/benchmarks.md

## chaos: reliability suites against real replicas, mockllm and PostgreSQL (killed replicas, a
## crashed and a frozen database, rolling restarts, load, hostile input, slow clients, an auth sweep); results
## written to docs/reliability.md
chaos:
	$(GO) run ./internal/tools/cmd/volleychaos -out docs/reliability.md

## fuzz: fuzz the JSONL line validator for a minute
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzValidate -fuzztime 60s ./internal/jsonl/

clean:
	rm -rf $(BIN)
