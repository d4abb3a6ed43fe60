#!/usr/bin/env bash
# record-conduit-fixtures.sh — record, from the REAL Conduit (Go), what its
# built-in file destination writes, so Culvert's tests can compare against it.
#
# Output: tests/fixtures/conduit-recorded/  (committed fixtures; re-run this
# script only when you want to re-record them). This script is NOT part of
# `make test` or CI: it needs a Conduit binary, PostgreSQL 15 binaries, psql,
# python3, curl and ss (iproute2); run as root (uses runuser -u postgres) or as
# a normal user.
#
# Usage:
#   scripts/record-conduit-fixtures.sh /path/to/conduit [OUT_DIR]
#
# Building Conduit by hand (upstream source, commit bb6ce44; never commit its
# code or binary into this repo):
#   mkdir -p /tmp/conduit-build/src
#   git --git-dir=<bare mirror of ConduitIO/conduit> archive HEAD | tar -x -C /tmp/conduit-build/src
#   cd /tmp/conduit-build/src
#   go build -ldflags "-X 'github.com/conduitio/conduit/pkg/conduit.version=v0.0.0-bb6ce44'" \
#       -o /tmp/conduit-build/conduit ./cmd/conduit/main.go
#   (= `make build` without its go-version check. Needs Go >= 1.25.8 and the Go
#    module proxy; ~4 min on 2 cores. The web UI is pre-built and embedded from
#    pkg/web/ui/dist, so node is not needed. If a module asks for a newer
#    toolchain: export GOTOOLCHAIN=go1.27.3)
#
# What it records (all into builtin:file, default sdk.record.format opencdc/json):
#   generator-structured.{yaml,jsonl}  builtin:generator, format.type structured, 3 records
#   generator-raw.{yaml,jsonl}         builtin:generator, format.type raw, 3 records
#   generator-structured-nodecode.*    as structured, but the destination's schema decoding
#                                      is off (sdk.schema.extract.{payload,key}.enabled:
#                                      false): shows the Avro bytes the source middleware made
#   postgres-users.{yaml,sql,jsonl}    builtin:postgres (cdcMode logrepl, snapshot of 3 rows,
#                                      then 2 inserts, 1 update, 1 delete), table with
#                                      REPLICA IDENTITY FULL: 7 records
#   postgres-users-default-identity.{yaml,sql,jsonl,error.txt}
#                                      same with REPLICA IDENTITY DEFAULT: the DELETE fails
#                                      in the SDK's source encoding middleware (Avro: null for
#                                      a non-null string), the pipeline stops after 6 records;
#                                      error.txt holds the error Conduit logged
#   connector-plugins.json             GET /v1/connectors/plugins (ListConnectorPlugins), sorted
#   plugin-resolution.txt              destination `plugin:` references (builtin:file@v0.10.8,
#                                      builtin:file@latest, file, unknown version, ...) and
#                                      whether Conduit ran them or the exact provisioning error
# The pipeline YAMLs are stored as used, with ${OUT_DIR} / ${PG_URL} left as
# environment placeholders (Conduit expands env vars in pipeline files).
# The .sql files have two sections: "-- @setup" (run before Conduit starts)
# and "-- @changes" (run after the 3 snapshot records reached the file, each
# statement its own transaction, psql autocommit).
#
# Environment knobs: CONDUIT_HTTP_PORT (18080), CONDUIT_GRPC_PORT (18084),
# PG_PORT (15433), PG_BIN (/usr/lib/postgresql/15/bin), KEEP_WORK=1 keeps the
# temp dir (conduit logs etc.).
set -euo pipefail

CONDUIT_BIN=${1:?usage: $0 /path/to/conduit [OUT_DIR]}
CONDUIT_BIN=$(readlink -f "$CONDUIT_BIN")
REPO_ROOT=$(cd "$(dirname "$0")/.." && pwd)
FIXTURES=${2:-$REPO_ROOT/tests/fixtures/conduit-recorded}
HTTP_PORT=${CONDUIT_HTTP_PORT:-18080}
GRPC_PORT=${CONDUIT_GRPC_PORT:-18084}
PG_PORT=${PG_PORT:-15433}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_USER=culvert_test

mkdir -p "$FIXTURES"
FIXTURES=$(cd "$FIXTURES" && pwd)
WORK=$(mktemp -d /tmp/record-conduit.XXXXXX)
chmod 755 "$WORK"
CONDUIT_PID=""
PG_STARTED=""

as_pg() { # run a command as a non-root user (initdb/postgres refuse root)
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
	if [ -n "$CONDUIT_PID" ] && kill -0 "$CONDUIT_PID" 2>/dev/null; then
		kill "$CONDUIT_PID" 2>/dev/null || true
		wait "$CONDUIT_PID" 2>/dev/null || true
	fi
	if [ -n "$PG_STARTED" ]; then
		as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -m fast stop >/dev/null 2>&1 || true
	fi
	if [ -z "${KEEP_WORK:-}" ]; then rm -rf "$WORK"; else echo "work dir kept: $WORK"; fi
}
trap cleanup EXIT

port_free() { ! ss -ltn "( sport = :$1 )" | grep -q ":$1"; }
for p in "$HTTP_PORT" "$GRPC_PORT" "$PG_PORT"; do
	port_free "$p" || { echo "port $p is in use; override via env" >&2; exit 1; }
done

# wait_lines FILE N TIMEOUT_S: wait until FILE has at least N lines.
wait_lines() {
	local f=$1 n=$2 t=$3 i=0
	while [ "$i" -lt $((t * 10)) ]; do
		if [ -f "$f" ] && [ "$(wc -l <"$f")" -ge "$n" ]; then return 0; fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "timeout waiting for $n lines in $f (have $([ -f "$f" ] && wc -l <"$f" || echo 0))" >&2
	return 1
}

# start_conduit NAME: run conduit on $WORK/NAME/pipelines with an in-memory DB.
start_conduit() {
	local d=$WORK/$1
	mkdir -p "$d/connectors" "$d/processors"
	"$CONDUIT_BIN" run \
		--db.type inmemory \
		--api.http.address "127.0.0.1:$HTTP_PORT" \
		--api.grpc.address "127.0.0.1:$GRPC_PORT" \
		--pipelines.path "$d/pipelines" \
		--connectors.path "$d/connectors" \
		--processors.path "$d/processors" \
		--config.path "$d/conduit.yaml" \
		--log.format json \
		>"$d/conduit.log" 2>&1 &
	CONDUIT_PID=$!
}

stop_conduit() {
	sleep 1 # let the destination write/ack anything still in flight
	kill -INT "$CONDUIT_PID" 2>/dev/null || true
	local i=0
	while kill -0 "$CONDUIT_PID" 2>/dev/null && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	if kill -0 "$CONDUIT_PID" 2>/dev/null; then kill -KILL "$CONDUIT_PID" || true; fi
	wait "$CONDUIT_PID" 2>/dev/null || true
	CONDUIT_PID=""
}

# first_error NAME: the first pipeline-stopping error Conduit logged (JSON log), if any.
first_error() {
	grep '"level":"error"' "$WORK/$1/conduit.log" | grep 'stopped with error' | head -n 1 |
		python3 -c 'import json,sys
for l in sys.stdin: print(json.loads(l).get("error", ""))' || true
}

# wait_log NAME PATTERN TIMEOUT_S: wait until conduit's log contains PATTERN.
wait_log() {
	local i=0
	while [ "$i" -lt $(($3 * 10)) ]; do
		if grep -q "$2" "$WORK/$1/conduit.log"; then return 0; fi
		sleep 0.1
		i=$((i + 1))
	done
	echo "timeout waiting for '$2' in $WORK/$1/conduit.log" >&2
	return 1
}

# ---------------------------------------------------------------- generator
# write_generator_yaml NAME FORMAT [extra destination settings lines...]
write_generator_yaml() {
	local name=$1 fmt=$2
	shift 2
	cat <<EOF
version: "2.2"
pipelines:
  - id: $name
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:generator
        settings:
          format.type: $fmt
          format.options.id: int
          format.options.name: string
          recordCount: "3"
          rate: "100"
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: \${OUT_DIR}/$name.jsonl
EOF
	for l in "$@"; do echo "          $l"; done
}

record_generator() { # NAME FORMAT [extra destination settings...]
	local name=$1
	echo "==> recording $name"
	mkdir -p "$WORK/$name/pipelines" "$WORK/$name/out"
	write_generator_yaml "$@" >"$FIXTURES/$name.yaml"
	cp "$FIXTURES/$name.yaml" "$WORK/$name/pipelines/"
	export OUT_DIR=$WORK/$name/out
	start_conduit "$name"
	wait_lines "$OUT_DIR/$name.jsonl" 3 60
	stop_conduit
	cp "$OUT_DIR/$name.jsonl" "$FIXTURES/$name.jsonl"
}

record_generator generator-structured structured
record_generator generator-raw raw
record_generator generator-structured-nodecode structured \
	'sdk.schema.extract.payload.enabled: "false"' \
	'sdk.schema.extract.key.enabled: "false"'

# ---------------------------------------------------------------- plugins
# ListConnectorPlugins over HTTP (sorted by name; Conduit itself returns them
# in Go map order) and how plugin references with versions resolve.
name=plugin-resolution
echo "==> recording $name and connector-plugins.json"
mkdir -p "$WORK/$name/pipelines" "$WORK/$name/out"
export OUT_DIR=$WORK/$name/out
variants="explicit=builtin:file@v0.10.8 latest=builtin:file@latest plain=builtin:file bare=file bare-version=file@v0.10.8 unknown-version=builtin:file@v9.9.9 unknown-name=builtin:nosuch standalone=standalone:file@v0.10.8 any-unknown-version=file@v9.9.9"
for v in $variants; do
	id=${v%%=*} plugin=${v#*=}
	cat >"$WORK/$name/pipelines/$id.yaml" <<EOF
version: "2.2"
pipelines:
  - id: $id
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:generator
        settings:
          format.type: raw
          format.options.id: int
          recordCount: "1"
      - id: destination
        type: destination
        plugin: $plugin
        settings:
          path: \${OUT_DIR}/$id.jsonl
EOF
done
start_conduit "$name"
i=0
until curl -sf "http://127.0.0.1:$HTTP_PORT/v1/connectors/plugins" -o "$WORK/$name/plugins.json"; do
	sleep 0.2
	i=$((i + 1))
	[ $i -lt 150 ] || { echo "conduit HTTP API did not come up" >&2; exit 1; }
done
sleep 3
stop_conduit
python3 - "$WORK/$name" "$FIXTURES" $variants <<'PYEOF'
import json, os, sys
work, fixtures, variants = sys.argv[1], sys.argv[2], sys.argv[3:]
plugins = json.load(open(os.path.join(work, "plugins.json")))
plugins.sort(key=lambda p: p["name"])
with open(os.path.join(fixtures, "connector-plugins.json"), "w") as f:
    json.dump(plugins, f, indent=2, sort_keys=True)
    f.write("\n")
errors = {}
for line in open(os.path.join(work, "conduit.log")):
    try:
        d = json.loads(line)
    except ValueError:
        continue
    if d.get("message") == "provisioning failed":
        err = d.get("error", "")
        pid = err.split('"')[1] if err.startswith('pipeline "') else "?"
        errors[pid] = err
with open(os.path.join(fixtures, "plugin-resolution.txt"), "w") as f:
    f.write("# destination plugin reference -> outcome (records written | provisioning error)\n")
    f.write("# note: 'available versions: [...]' is printed in Go map order (not stable)\n")
    for v in variants:
        pid, plugin = v.split("=", 1)
        out = os.path.join(work, "out", pid + ".jsonl")
        n = sum(1 for _ in open(out)) if os.path.exists(out) else 0
        f.write(f"{plugin}\t{'written=' + str(n) if pid not in errors else 'error: ' + errors[pid]}\n")
PYEOF

# ---------------------------------------------------------------- postgres
[ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL binaries in $PG_BIN" >&2; exit 1; }
mkdir -p "$WORK/pgdata" "$WORK/pgsock"
if [ "$(id -u)" = 0 ]; then chown postgres "$WORK/pgdata" "$WORK/pgsock"; fi
as_pg "$PG_BIN/initdb" -D "$WORK/pgdata" -U "$PG_USER" --auth=trust -E UTF8 --locale=C >"$WORK/initdb.log" 2>&1
as_pg "$PG_BIN/pg_ctl" -D "$WORK/pgdata" -l "$WORK/pgsock/postgres.log" -w start \
	-o "-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c unix_socket_directories=$WORK/pgsock -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10" >/dev/null
PG_STARTED=1
psql_do() { psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" "$@"; }

# record_postgres NAME REPLICA_IDENTITY EXPECTED_LINES [LOG_PATTERN_TO_WAIT_FOR]
record_postgres() {
	local name=$1 identity=$2 expect=$3 waitfor=${4:-} db
	db=$(echo "$name" | tr - _)
	echo "==> recording $name"
	mkdir -p "$WORK/$name/pipelines" "$WORK/$name/out"
	psql_do -d postgres -c "CREATE DATABASE $db"
	cat >"$FIXTURES/$name.sql" <<EOF
-- @setup (before Conduit starts; the snapshot reads these 3 rows)
CREATE TABLE users (id int PRIMARY KEY, name text);
ALTER TABLE users REPLICA IDENTITY $identity;
INSERT INTO users (id, name) VALUES (1, 'alice'), (2, 'bob'), (3, 'carol');
-- @changes (after the 3 snapshot records reached the file; one statement per transaction)
INSERT INTO users (id, name) VALUES (4, 'dave');
INSERT INTO users (id, name) VALUES (5, 'erin');
UPDATE users SET name = 'bobby' WHERE id = 2;
DELETE FROM users WHERE id = 3;
EOF
	sed -n '/^-- @setup/,/^-- @changes/p' "$FIXTURES/$name.sql" | grep -v '^-- @' >"$WORK/$name/setup.sql"
	sed -n '/^-- @changes/,$p' "$FIXTURES/$name.sql" | grep -v '^-- @' >"$WORK/$name/changes.sql"
	psql_do -d "$db" -f "$WORK/$name/setup.sql"

	cat >"$FIXTURES/$name.yaml" <<EOF
version: "2.2"
pipelines:
  - id: $name
    status: running
    connectors:
      - id: source
        type: source
        plugin: builtin:postgres
        settings:
          url: \${PG_URL}
          tables: users
          cdcMode: logrepl
          snapshotMode: initial
          logrepl.slotName: ${db}_slot
          logrepl.publicationName: ${db}_pub
      - id: destination
        type: destination
        plugin: builtin:file
        settings:
          path: \${OUT_DIR}/$name.jsonl
EOF
	cp "$FIXTURES/$name.yaml" "$WORK/$name/pipelines/"
	export OUT_DIR=$WORK/$name/out
	export PG_URL="postgres://$PG_USER@127.0.0.1:$PG_PORT/$db?sslmode=disable"
	start_conduit "$name"
	wait_lines "$OUT_DIR/$name.jsonl" 3 90
	sleep 3 # let the connector switch from the snapshot to logical replication
	psql_do -d "$db" -f "$WORK/$name/changes.sql"
	wait_lines "$OUT_DIR/$name.jsonl" "$expect" 90
	if [ -n "$waitfor" ]; then wait_log "$name" "$waitfor" 90; fi
	sleep 3 # anything beyond $expect would show up here
	stop_conduit
	cp "$OUT_DIR/$name.jsonl" "$FIXTURES/$name.jsonl"
	first_error "$name" >"$WORK/$name/errors.txt"
	if [ -s "$WORK/$name/errors.txt" ]; then
		cp "$WORK/$name/errors.txt" "$FIXTURES/$name.error.txt"
	else
		rm -f "$FIXTURES/$name.error.txt"
	fi
}

record_postgres postgres-users FULL 7
record_postgres postgres-users-default-identity DEFAULT 6 "stopped with error"

echo "==> done; fixtures in $FIXTURES"
ls -l "$FIXTURES"
