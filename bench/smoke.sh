#!/usr/bin/env bash
# A short benchmark on PostgreSQL, so that a regression shows in every CI log (no timed assertion:
# speed is measured, not asserted). Also the quickest way to see kefu's figures on a machine:
#   bench/smoke.sh [kefu binary] [seconds per run]
# It starts `kefu up` on a fresh database kefu_bench_smoke on 127.0.0.1:5432 (user postgres), runs
# `kefu bench` at 4 and 16 callers and a mixed day at 8, then the pgbench ceiling at 16 clients
# for the same few seconds, and stops the suite. docs/benchmarks.md holds the full runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kefu=${1:-$here/../target/release/kefu}
seconds=${2:-5}
database=kefu_bench_smoke
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)" -c "CREATE DATABASE $database"

export KEFU_DATABASE_URL=postgres://postgres@127.0.0.1:5432/$database
export KEFU_BOOTSTRAP_TOKEN=kefu-bench-smoke-bootstrap-token-0123456789
export KEFU_RATE_LIMIT=1000000
export KEFU_LOG=warn
export KEFU_DATA_DIR
KEFU_DATA_DIR=$(mktemp -d)
log="$KEFU_DATA_DIR/up.log"
"$kefu" up >"$log" 2>&1 &
suite=$!
trap 'kill $suite 2>/dev/null || true; wait $suite 2>/dev/null || true' EXIT

# Ready when the gateway issues a token.
KEFU_TOKEN=
for _ in $(seq 60); do
  if KEFU_TOKEN=$("$kefu" token create --token "$KEFU_BOOTSTRAP_TOKEN" --subject bench \
      --department intake --role agent 2>/dev/null | tail -n 1) && [ -n "$KEFU_TOKEN" ]; then
    break
  fi
  kill -0 $suite 2>/dev/null || { echo "kefu up stopped:" >&2; cat "$log" >&2; exit 1; }
  sleep 1
done
[ -n "$KEFU_TOKEN" ] || { echo "kefu up did not become ready in 60 s:" >&2; cat "$log" >&2; exit 1; }
export KEFU_TOKEN

echo "== kefu bench: registrations, PostgreSQL, $seconds s per run ($(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores)"
"$kefu" bench --concurrency 4,16 --seconds "$seconds" --drain-seconds 30 --suite-pid $suite --postgres
echo "== kefu bench: a mixed day, 8 callers"
"$kefu" bench --mix day --concurrency 8 --seconds "$seconds" --drain-seconds 30 --suite-pid $suite --postgres
kill $suite; wait $suite 2>/dev/null || true
trap - EXIT
echo "== the ceiling beside it: pgbench, 16 clients, $seconds s"
"$here/ceiling.sh" 16 "$seconds" | grep -E '^(tps|latency average)'
psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $database WITH (FORCE)"
