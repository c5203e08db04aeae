# millrace: make targets. `make test` is what CI runs (.ci/run).
GO      ?= go
PKGS    ?= ./...
# Integration tests need PostgreSQL and MariaDB on 127.0.0.1 (see README); Kafka is
# in-process unless KAFKA_BROKERS is set.
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: all test test-short test-full fuzz bench bench-relay lint vet fmt tidy demo build up down

all: lint test

## test: vet, then every test with the race detector (what CI runs).
test: vet
	$(GO) test $(TESTFLAGS) $(PKGS)

## test-short: quick run; skips the slow scenario and conformance tests.
test-short:
	$(GO) test -short -count=1 $(PKGS)

## test-full: everything, including the full Watermill conformance suites.
test-full: vet
	MILLRACE_FULL=1 $(GO) test $(TESTFLAGS) -timeout 40m $(PKGS)

## fuzz: run each fuzz target of FUZZ_TARGETS (package:FuzzName) for FUZZTIME
## (default 5m) in turn; findings land in the package's testdata/fuzz, whose seeds
## `make test` runs. FUZZFLAGS adds flags (default -fuzzminimizetime=20x: the SQL-backed
## FuzzRawRow runs ~15 inputs/s, and the default 60 s minimisation of every new input
## would take most of the time), e.g. FUZZFLAGS='-fuzzminimizetime=20x -parallel=1'.
FUZZ_TARGETS ?= ./internal/redact:FuzzRedactDSN ./outbox:FuzzRawRow
FUZZTIME     ?= 5m
FUZZFLAGS    ?= -fuzzminimizetime=20x
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; \
	done

## bench: Go benchmarks: the decorator's overhead, the batching publisher against
## watermill-kafka's (same in-process broker, 0 and 1 ms added latency), and the
## outbox's database cost per 1000-event batch (BenchmarkReadBatch).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 ./adapter/ ./outbox/

## bench-relay: the relay against the stock Watermill outbox path (docs/benchmarks.md).
bench-relay:
	$(GO) run ./cmd/bench-relay $(BENCHFLAGS)

## lint: gofmt and go vet.
lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

tidy:
	$(GO) mod tidy

build:
	$(GO) build $(PKGS)

## demo: the end-to-end outbox demo on an in-process broker and the local
## PostgreSQL (DATABASE_URL): 30 s of traffic plus the drain, after a build that
## takes a minute or two the first time; KAFKA_BROKERS uses a real cluster.
demo:
	@echo "outbox-demo: building… (the first build compiles the dependencies: a minute or two)"
	@$(GO) build -o bin/outbox-demo ./examples/outbox-demo
	@./bin/outbox-demo $(DEMOFLAGS)

## up / down: the docker compose stack (Kafka, PostgreSQL, relay, order service,
## Prometheus, Grafana) for machines with a Docker engine.
COMPOSE ?= docker compose -f deploy/docker-compose.yml
up:
	$(COMPOSE) up -d --build --wait

down:
	$(COMPOSE) down -v
