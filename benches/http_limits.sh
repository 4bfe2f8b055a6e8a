#!/usr/bin/env bash
# Does one client hammering the Open311 listing slow the others? Measured
# with the rate limits off and on.
#
# Builds the release binary, simulates a demo store (`gridcase demo --days N`),
# creates two resident keys (an "abuser" and a "victim"), and for each of
# two server configurations (limits off; the default per-key limits) runs:
#   1. the victim alone: VICTIM_REQUESTS sequential `GET requests/{id}.json`
#      (a cheap read), one every 50 ms, timed by curl;
#   2. the same victim while wrk (THREADS x CONNECTIONS, DURATION) sends the
#      abuser's full listing, `GET requests.json` over the demo's days
#      (every request, up to 1000 per page), with its key in the query.
# It prints the victim's p50/p99 latency per phase and the abuser's
# requests/s split into answered (2xx) and refused (429).
#
# All clients connect from 127.0.0.1, so the per-address limit would count
# the victim with the abuser: it is turned off in both configurations and
# the per-key limit (default 50/s, burst 100; a full page costs 11) is what
# is measured. Needs wrk, curl, GNU date, sort.
# Tunables (environment): DURATION (20s), THREADS (2), CONNECTIONS (16),
# DAYS (2), VICTIM_REQUESTS (150), CARGO_TARGET_DIR, GRIDCASE_BIN.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-20s}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-16}
DAYS=${DAYS:-2}
VICTIM_REQUESTS=${VICTIM_REQUESTS:-150}
TARGET=${CARGO_TARGET_DIR:-target}

for tool in wrk curl date sort; do
    command -v "$tool" >/dev/null || { echo "missing $tool (Debian: apt-get install -y wrk curl)" >&2; exit 1; }
done

if [ -n "${GRIDCASE_BIN:-}" ]; then
    BIN="$GRIDCASE_BIN"
else
    echo "== build"
    cargo build --release -p gridcase-cli --quiet
    BIN="$TARGET/release/gridcase"
fi

WORK=$(mktemp -d)
SERVER=""
stop_server() {
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    SERVER=""
}
cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT

DATA="$WORK/data"
echo "== demo store: $DAYS days"
"$BIN" --data "$DATA" --durability buffered demo --days "$DAYS" >"$WORK/demo.out" 2>"$WORK/demo.err"
ABUSER=$("$BIN" --data "$DATA" apikey create --as resident:abuser --label wrk 2>/dev/null)
VICTIM=$("$BIN" --data "$DATA" apikey create --as resident:victim --label curl 2>/dev/null)
"$BIN" --data "$DATA" --durability buffered tick --now "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >/dev/null

START=2026-02-28T00:00:00Z
END=$(date -u -d "2026-02-28 + $((DAYS < 88 ? DAYS + 1 : 89)) days" +%Y-%m-%dT00:00:00Z)

cat >"$WORK/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
    + summary.errors.timeout
  io.write(string.format("RESULT requests=%d rps=%.1f non2xx=%d errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), summary.errors.status, errors))
end
EOF

start_server() {
    "$BIN" --data "$DATA" --durability buffered serve --listen 127.0.0.1:0 --tick-seconds 0 \
        --rate-per-address 0 "$@" >"$WORK/serve.out" 2>"$WORK/serve.err" &
    SERVER=$!
    ADDR=""
    for _ in $(seq 1 600); do
        ADDR=$(sed -n 's/^listening on //p' "$WORK/serve.out" 2>/dev/null || true)
        [ -n "$ADDR" ] && break
        kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/serve.err" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$ADDR" ] || { echo "the server did not start" >&2; exit 1; }
    BASE="http://$ADDR"
}

# The victim: sequential cheap reads, one every 50 ms; prints p50 p99 in ms.
victim() {
    local out=$1 id=$2
    : >"$out"
    for _ in $(seq 1 "$VICTIM_REQUESTS"); do
        curl -s -o /dev/null -w '%{http_code} %{time_total}\n' \
            "$BASE/open311/v2/requests/$id.json?api_key=$VICTIM" >>"$out"
        sleep 0.05
    done
}

percentiles() {
    local file=$1
    local n ok
    n=$(wc -l <"$file")
    ok=$(grep -c '^200 ' "$file" || true)
    awk '{print $2 * 1000}' "$file" | sort -n >"$file.sorted"
    local p50 p99
    p50=$(sed -n "$(( (n + 1) / 2 ))p" "$file.sorted")
    p99=$(sed -n "$(( (n * 99 + 99) / 100 ))p" "$file.sorted")
    echo "n=$n ok=$ok p50_ms=$p50 p99_ms=$p99"
}

run_config() {
    local label=$1
    shift
    echo "== server: $label ($*)"
    start_server "$@"
    local id
    id=$(curl -sf "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END&page_size=1&api_key=$VICTIM" \
        | grep -o '"service_request_id":"[^"]*"' | head -1 | cut -d'"' -f4)
    local rows
    rows=$(curl -sf "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END" | grep -o '"service_request_id"' | wc -l)
    echo "listing: $rows requests per full page; victim reads $id"
    victim "$WORK/$label.alone" "$id"
    echo "victim alone:        $(percentiles "$WORK/$label.alone")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --timeout 30s -s "$WORK/report.lua" \
        "$BASE/open311/v2/requests.json?start_date=$START&end_date=$END&api_key=$ABUSER" \
        >"$WORK/$label.wrk" &
    local wrk_pid=$!
    sleep 2
    victim "$WORK/$label.loaded" "$id"
    wait "$wrk_pid" || true
    echo "victim under abuse:  $(percentiles "$WORK/$label.loaded")"
    echo "abuser (wrk):        $(grep RESULT "$WORK/$label.wrk" | sed 's/^RESULT //')"
    curl -sf "$BASE/metrics" | grep '^gridcase_rate_limited_total' || true
    stop_server
}

run_config limits_off --rate-per-key 0 --submissions-per-minute 0 --listing-concurrency 64
run_config limits_on

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg)"
