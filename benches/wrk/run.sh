#!/usr/bin/env bash
# Token endpoint under wrk (a separate load-generating process), against the
# release binary on a fresh SQLite database in a temp dir, or on PostgreSQL
# when KEYGATE_BENCH_POSTGRES_URL names an empty database it may write to.
#
#   benches/wrk/run.sh [seconds]        needs wrk (apt-get install wrk)
#   KEYGATE_BENCH_BIN=/path/to/keygate benches/wrk/run.sh   that binary instead
#                                       of a fresh release build (to compare two)
#   KEYGATE_BENCH_KEY_ARGS="--max-tokens-per-minute 1000000" ...   extra
#                                       `keys create` arguments for the key
set -euo pipefail
seconds=${1:-10}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
if [ -n "${KEYGATE_BENCH_BIN:-}" ]; then
    bin=$KEYGATE_BENCH_BIN
else
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    bin=$root/target/release/keygate
fi
dir=$(mktemp -d)
server=""
trap 'kill "$server" 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
export KEYGATE_DATABASE_URL=${KEYGATE_BENCH_POSTGRES_URL:-sqlite://$dir/keygate.db}
export KEYGATE_SECRET_KEY=${KEYGATE_SECRET_KEY:-$(printf 'ab%.0s' {1..32})}
export KEYGATE_LISTEN=127.0.0.1:18080 RUST_LOG=warn
echo "database: ${KEYGATE_DATABASE_URL%%://*}"
"$bin" migrate >/dev/null
"$bin" users add bench@example.com >/dev/null
"$bin" apis add https://api.example.com --name bench --scopes "read write" >/dev/null
key=$("$bin" keys create --owner bench@example.com --name bench --scope read \
    --audience https://api.example.com ${KEYGATE_BENCH_KEY_ARGS:-} --json)
id=$(printf '%s' "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_id"])')
secret=$(printf '%s' "$key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["client_secret"])')
"$bin" serve 2>"$dir/serve.log" &
server=$!
for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/readyz >/dev/null && break; sleep 0.1; done
KEYGATE_BASIC=$(printf '%s:%s' "$id" "$secret" | base64 -w0)
export KEYGATE_BASIC
url=http://127.0.0.1:18080/oauth/token
wrk -t1 -c1 -d2s -s "$root/benches/wrk/token.lua" "$url" >/dev/null   # warm-up

# One wrk run, then the server's CPU time (user + system) per request: on a
# shared machine steadier than requests/s, which the neighbours' load moves.
measure() {
    local threads=$1 conns=$2 tick before after out
    tick=$(getconf CLK_TCK)
    before=$(awk '{print $14 + $15}' "/proc/$server/stat")
    out=$(wrk -t"$threads" -c"$conns" -d"${seconds}s" --latency -s "$root/benches/wrk/token.lua" "$url")
    after=$(awk '{print $14 + $15}' "/proc/$server/stat")
    printf '%s\n' "$out"
    printf '%s' "$out" | awk -v t="$tick" -v b="$before" -v a="$after" \
        '/requests in/ { printf "server CPU per request: %.1f us\n", (a - b) / t / $1 * 1e6 }'
}
echo "== 1 connection, ${seconds}s"
measure 1 1
echo "== 64 connections, 2 threads, ${seconds}s"
measure 2 64
