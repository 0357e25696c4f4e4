# orderstate: `make demo` shows it working, `make test` checks it.
GO      ?= go
BIN     := bin/orderstate
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
FUZZTIME ?= 10s
CRASH_CYCLES ?= 20
PKGS    := ./...

.PHONY: help build test test-short fuzz bench demo crash replicas lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/orderstate
	$(GO) build -ldflags "-X main.Version=$(VERSION)" -o $(BIN) ./cmd/orderstate

test: ## run every test with the race detector
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

fuzz: ## run each adapter's fuzz targets (webhooks, and poll answers where there is a poller) for FUZZTIME (default 10s)
	@for p in tokenz yoco tazapay tweed; do \
		echo "fuzz $$p for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz=FuzzVerifyParse -fuzztime=$(FUZZTIME) ./adapters/$$p || exit 1; \
	done
	@for p in yoco tazapay; do \
		echo "fuzz $$p poll answers for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz=FuzzPollAnswer -fuzztime=$(FUZZTIME) ./adapters/$$p || exit 1; \
	done

bench: build ## measure ingest, reads, sweep and report against the real server (builds a 1M-order store once, in .bench)
	$(GO) build -o bin/orderstate-bench ./cmd/orderstate-bench
	./bin/orderstate-bench --bin $(BIN) --dir .bench --out .bench/results.md

crash: ## SIGKILL a loaded serve CRASH_CYCLES times (default 20) and cut its power POWERCUT_CYCLES times (default 50), restart it, check nothing acknowledged or shown is lost or half-applied
	$(GO) test -count=1 -timeout 30m -run '^(TestCrashDurability|TestPowerCutDurability)$$' -v ./cmd/orderstate/internal/reliability -crash.cycles=$(CRASH_CYCLES) -powercut.cycles=$(or $(POWERCUT_CYCLES),50)

replicas: ## three serve replicas on one throwaway PostgreSQL: duplicates, order, one sweep per tick, a killed replica, PostgreSQL restarted
	$(GO) test -count=1 -timeout 10m -run '^TestReplicas_SharePostgres$$' -v ./cmd/orderstate/internal/reliability

demo: build ## play a day of shop traffic through a fresh sidecar and check its findings
	./$(BIN) demo

lint: ## gofmt, go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build output, demo and bench files (not reports/, where serve writes by default)
	rm -rf bin demo .bench
