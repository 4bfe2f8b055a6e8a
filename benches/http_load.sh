#!/usr/bin/env bash
# HTTP load test of the Open311 surface, from a second process on loopback.
#
# Builds the release binary, simulates a demo store (`gridcase demo --days N`),
# creates an API key for a resident, starts `gridcase serve` on a free
# 127.0.0.1 port, and runs wrk (bounded in time) against
#   1. POST /open311/v2/requests.json  (form-encoded submissions)
#   2. GET  /open311/v2/requests.json  over the demo's days (a full page, up to 1000 requests)
#   3. GET  /open311/v2/requests.json  with page_size=50
# then stops the server and prints throughput, p50/p99 latency and errors.
#
# Needs wrk (Debian: apt-get install -y wrk), curl and GNU date.
# Tunables (environment): DURATION (10s), THREADS (2), CONNECTIONS (32),
# DAYS (2), DURABILITY (durable | buffered | strict), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DAYS=${DAYS:-2}
DURABILITY=${DURABILITY:-durable}
TARGET=${CARGO_TARGET_DIR:-target}

for tool in wrk curl date; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y wrk curl)" >&2; exit 1; }
done

# GRIDCASE_BIN=path runs an already built binary (an A/B of two builds).
if [ -n "${GRIDCASE_BIN:-}" ]; then
    BIN="$GRIDCASE_BIN"
else
    echo "== build"
    cargo build --release -p gridcase-cli --quiet
    BIN="$TARGET/release/gridcase"
fi

WORK=$(mktemp -d)
SERVER=""
cleanup() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

DATA="$WORK/data"
echo "== demo store: $DAYS days"
"$BIN" --data "$DATA" --durability buffered demo --days "$DAYS" >"$WORK/demo.out" 2>"$WORK/demo.err"
KEY=$("$BIN" --data "$DATA" apikey create --as resident:loadtest --label wrk 2>/dev/null)
# The demo's cases are dated in the simulated past: record their overdue
# deadlines now, so that the server's first tick does not land mid-measurement.
"$BIN" --data "$DATA" --durability buffered tick --now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >/dev/null

echo "== serve (durability $DURABILITY)"
# Throughput of the server itself: one key on one address sends everything,
# so the rate limits are off (benches/http_limits.sh measures them).
"$BIN" --data "$DATA" --durability "$DURABILITY" serve --listen 127.0.0.1:0 --tick-seconds 60 \
    --rate-per-address 0 --rate-per-key 0 --submissions-per-minute 0 \
    >"$WORK/serve.out" 2>"$WORK/serve.err" &
SERVER=$!
ADDR=""
for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out" 2>/dev/null || true)
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
    sleep 0.1
done
[ -n "$ADDR" ] || { echo "the server did not start" >&2; cat "$WORK/serve.err" >&2; exit 1; }
BASE="http://$ADDR"
echo "listening on $ADDR"

# A service code and a grid of the shipped Tinghu organisation.
SERVICE=$(curl -sf "$BASE/open311/v2/services.json" | grep -o '"service_code":"[^"]*"' | head -1 | cut -d'"' -f4)
GRID=320902001001001
# The demo's simulated days (it starts 2026-02-28T16:00Z), within Open311's 90-day limit.
START=2026-02-28T00:00:00Z
END=$(date -u -d "2026-02-28 + $((DAYS < 88 ? DAYS + 1 : 89)) days" +%Y-%m-%dT00:00:00Z)
INDEXED=$(curl -sf "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END" | grep -o '"service_request_id"' | wc -l)
echo "service $SERVICE, grid $GRID, $INDEXED requests in the GET window"

cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout + summary.errors.status
  io.write(string.format("RESULT requests=%d rps=%.1f p50_ms=%.2f p99_ms=%.2f errors=%d non2xx=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors, summary.errors.status))
end
EOF
cat "$WORK/report.lua" >"$WORK/post.lua"
cat >>"$WORK/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "api_key=$KEY&service_code=$SERVICE&address_id=$GRID&description=load+test&first_name=Li&phone=13800000000"
EOF

run() {
    local name=$1 script=$2 url=$3
    echo "== $name"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 10s -s "$script" "$url" | tee "$WORK/$name.txt" | grep -E "RESULT|Non-2xx|Socket errors" || true
}

run post "$WORK/post.lua" "$BASE/open311/v2/requests.json"
run get_full "$WORK/report.lua" "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END"
run get_page50 "$WORK/report.lua" "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END&page_size=50"

echo "== server metrics after the load"
curl -sf "$BASE/metrics" | grep -E '^gridcase_append_duration_seconds_(sum|count)|^gridcase_projection_lag_events|^gridcase_log_head_position' || true

kill -TERM "$SERVER"
wait "$SERVER" || true
SERVER=""

echo "== summary ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr))"
printf '%-11s %10s %10s %10s %8s %8s\n' test requests req/s p50_ms p99_ms errors
for name in post get_full get_page50; do
    line=$(grep RESULT "$WORK/$name.txt" || echo "RESULT requests=? rps=? p50_ms=? p99_ms=? errors=?")
    val() { echo "$line" | sed -n "s/.*$1=\([^ ]*\).*/\1/p"; }
    printf '%-11s %10s %10s %10s %8s %8s\n' "$name" "$(val requests)" "$(val rps)" "$(val p50_ms)" "$(val p99_ms)" "$(val errors)"
done
