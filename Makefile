# Culvert's two front doors: `make run` starts the server, `make test` runs every test.
# Both install what a fresh Debian machine is missing (clang and libclang-dev, needed to
# build RocksDB) before building.

SHELL := /bin/bash
# Builds live outside the checkout so that fresh clones (and CI) build incrementally.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/culvert-target
CARGO ?= cargo
RUN_ARGS ?=

.PHONY: run test lint unit bench bench-api bench-pipeline bench-vs-conduit bench-instructions bench-provisioning bench-events bench-standalone bench-wasm bench-processors bench-template bench-kafka bench-postgres bench-s3 reliability soak fuzz symbol-order deps fmt clean

## run: build and start the server (RocksDB under ./data; flags via RUN_ARGS="...")
run: deps
	$(CARGO) run --locked --bin culvert -- run $(RUN_ARGS)

## test: formatting, clippy, then the whole test suite
test: deps lint unit

# clippy only type-checks and never links, so it does not need RocksDB's C++ library:
# pointing librocksdb-sys at a library directory skips a second 13-minute C++ build (cargo
# gives check builds their own build-script run, which would otherwise compile it again).
CLIPPY_ROCKSDB_ENV = ROCKSDB_LIB_DIR=$(CARGO_TARGET_DIR)/clippy-no-link ROCKSDB_STATIC=1

lint: deps
	$(CARGO) fmt --all -- --check
	@mkdir -p $(CARGO_TARGET_DIR)/clippy-no-link
	$(CLIPPY_ROCKSDB_ENV) $(CARGO) clippy --locked --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --locked --workspace --no-fail-fast

## bench: criterion benchmarks of the event log (figures go in BENCHMARKS.md)
bench: deps
	$(CARGO) bench --locked --bench event_log

## bench-api: gRPC and HTTP load scripts (requests/s), printed figures go in BENCHMARKS.md
bench-api: deps
	$(CARGO) bench --locked --bench grpc_load
	$(CARGO) bench --locked --bench http_load

## bench-events: the event-log API over 1,000,000 events (ListEvents, WatchEvents, GetAt)
bench-events: deps
	$(CARGO) bench --locked --bench events

## bench-provisioning: 1,000 pipeline configuration files provisioned at start (time, events)
bench-provisioning: deps
	$(CARGO) bench --locked --bench provisioning

## bench-pipeline: generator -> file through the engine (records/s, MB/s, latency, RSS)
bench-pipeline: deps
	$(CARGO) bench --locked --bench pipeline
	CULVERT_BENCH_PROCESSORS=4 $(CARGO) bench --locked --bench pipeline
	CULVERT_BENCH_POSITIONS=rocksdb $(CARGO) bench --locked --bench pipeline

## bench-vs-conduit: one Conduit pipeline file (generator -> file) through a release build of
## Culvert and, with CONDUIT_BIN=/path/to/conduit, through Conduit: records/s, peak RSS, CPU,
## p50/p99 and the ratios (VS_ARGS="--records N --shape small|1k --runs K")
bench-vs-conduit: deps
	$(CARGO) build --release --locked --bin culvert
	benches/vs-conduit --culvert $(CARGO_TARGET_DIR)/release/culvert $(VS_ARGS)

## bench-instructions: user-space instructions per record of the bench-vs-conduit pipeline,
## counted by callgrind (N and 2N records; needs valgrind): steadier than records/s on a
## shared VM (INSTR_ARGS="--shape small|1k --records N --top K")
bench-instructions: deps
	$(CARGO) build --release --locked --bin culvert
	benches/instructions --culvert $(CARGO_TARGET_DIR)/release/culvert $(INSTR_ARGS)

## bench-kafka: builtin:kafka vs Conduit's Kafka connector (standalone) on a local broker:
## generator -> kafka and kafka -> file (records/s, latency p50/p99, ratio)
bench-kafka: deps
	$(CARGO) bench --locked --bench kafka

## bench-postgres: PostgreSQL CDC -> file, builtin:postgres vs Conduit's postgres connector
## (standalone) (records/s, latency p50/p99, ratio)
bench-postgres: deps
	$(CARGO) bench --locked --bench postgres

## bench-s3: builtin:s3 vs Conduit's S3 connector (standalone) against moto: generator -> s3
## and s3 -> file (records/s, ratio)
bench-s3: deps
	$(CARGO) bench --locked --bench s3

## bench-standalone: built-in generator -> file vs a standalone Go source -> file (records/s,
## per-record cost of the process boundary)
bench-standalone: deps
	$(CARGO) bench --locked -p culvert-engine --bench standalone

## bench-wasm: generator -> file with and without a no-op WASM processor (records/s, cost
## per record)
bench-wasm: deps
	$(CARGO) bench --locked -p culvert-engine --bench wasm

## bench-processors: each built-in processor's cost per record (batches of 1,000 small records)
bench-processors: deps
	$(CARGO) bench --locked -p culvert-processors --bench processors

## bench-template: rendering parsed Go templates (fields, functions, range, variables)
bench-template: deps
	$(CARGO) bench --locked -p culvert-template --bench render

## reliability: the long reliability runs (RELIABILITY.md): 1M records through 20 SIGKILLs and
## a crash at each fail point, 50 crashes in the ack window, SIGTERM at 1M, DLQ at 200k,
## 10,000 hostile WASM runs, 1,000 power losses, a projection rebuild of 1M events
reliability: deps
	CULVERT_RELIABILITY_RECORDS=1000000 CULVERT_RELIABILITY_KILLS=20 \
	CULVERT_RELIABILITY_SLOT_CRASHES=50 CULVERT_RELIABILITY_DRAIN_RECORDS=1000000 \
	CULVERT_RELIABILITY_DLQ_RECORDS=200000 \
	$(CARGO) test --locked --workspace --test e2e -- reliability:: --test-threads 1 --nocapture
	CULVERT_HOSTILE_WASM_INVOCATIONS=10000 $(CARGO) test --locked --workspace --test e2e -- hostile_wasm:: --nocapture
	CULVERT_POWER_LOSS_ITERATIONS=1000 $(CARGO) test --locked --workspace --test power_loss -- --nocapture
	CULVERT_REBUILD_EVENTS=1000000 $(CARGO) test --locked --workspace --test rebuild -- --nocapture

## soak: the one-hour soak (RELIABILITY.md, "Soak"): stalling destinations, a standalone plugin
## stopped, started and SIGKILLed every lap; fds, threads and tokio tasks back to baseline,
## RSS growth < 5%, 0 records lost (`make test` runs the 60 s form)
SOAK_SECS ?= 3600
soak: deps
	CULVERT_SOAK_SECS=$(SOAK_SECS) $(CARGO) test --locked --workspace --test soak -- --nocapture

## fuzz: every fuzz target (fuzz/, cargo-fuzz on nightly) for FUZZ_SECONDS each (default 600);
## new inputs go to FUZZ_CORPUS, crashes to fuzz/artifacts/<target>/ (a crash fails the run)
FUZZ_SECONDS ?= 600
FUZZ_TARGETS ?= pipeline_file opencdc_json api_bodies positions event_envelopes standalone_messages
FUZZ_CORPUS ?= $(HOME)/.cache/culvert-fuzz-corpus
# Its own target directory (nightly, coverage instrumentation: nothing shared with the main
# build). RocksDB's C++ library is taken from the main build when there is one (see lint).
FUZZ_ENV = CARGO_TARGET_DIR=$(HOME)/.cache/culvert-fuzz-target \
	$$(lib=$$(ls -t $(CARGO_TARGET_DIR)/debug/build/librocksdb-sys-*/out/librocksdb.a 2>/dev/null | head -1); \
	   [ -n "$$lib" ] && echo ROCKSDB_LIB_DIR=$$(dirname $$lib) ROCKSDB_STATIC=1)
fuzz: deps
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo +nightly fuzz --version >/dev/null 2>&1 || cargo +nightly install cargo-fuzz --locked
	cd fuzz && env $(FUZZ_ENV) cargo +nightly fuzz build -s none -O -a
	set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_CORPUS)/$$t; \
		(cd fuzz && env $(FUZZ_ENV) cargo +nightly fuzz run -s none -O -a $$t \
			$(FUZZ_CORPUS)/$$t corpus/$$t -- -max_total_time=$(FUZZ_SECONDS)); \
	done

## symbol-order: profile a release build under valgrind (start-up, generator -> file and log)
## and rewrite link/hot-symbols.txt, the function layout release builds link with (build.rs);
## rerun after a dependency upgrade or a large change to the hot path
symbol-order: deps
	@command -v valgrind >/dev/null || { s=; [ "$$(id -u)" -ne 0 ] && s=sudo; \
		$$s apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$s apt-get install -y -qq valgrind >/dev/null; }
	$(CARGO) build --release --locked --bin culvert
	scripts/symbol-order --binary $(CARGO_TARGET_DIR)/release/culvert
	$(CARGO) build --release --locked --bin culvert
	scripts/symbol-order --check $(CARGO_TARGET_DIR)/release/culvert

fmt:
	$(CARGO) fmt --all

deps:
	@./scripts/install-deps.sh

clean:
	$(CARGO) clean
