#!/usr/bin/env bash
# The console on a big market: seeds a fresh node with PROVIDERS providers and LEASES active
# leases (bench/seed-market.sh, real signed transactions), starts `gridlease console` over it,
# says how long the console took to read the whole market, then times each page in Debian's
# chromium (crates/console/browser/console.perf.mjs: first byte, first render, load, the
# HTML's size, the rows shown) and prints a Markdown table; each page's first screen is saved
# as target/console-screenshots/scale-*.png (SCREENSHOTS). Stops what it started.
#
# Environment: PROVIDERS (1000), LEASES (10000), PROFILE (release), RUNS (5 loads per page),
#   CONSOLE_PORT (8090), RPC_PORT (26757), P2P_PORT (26756), CHROMIUM (/usr/bin/chromium).
# Needs node with `npm ci --prefix crates/console/browser` and chromium (apt-get install -y
# chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

export PROVIDERS=${PROVIDERS:-1000} LEASES=${LEASES:-10000} PROFILE=${PROFILE:-release}
export RPC_PORT=${RPC_PORT:-26757} P2P_PORT=${P2P_PORT:-26756}
export STATE=${TMPDIR:-/tmp}/gridlease-console-bench.env
CONSOLE_PORT=${CONSOLE_PORT:-8090}

[ -d crates/console/browser/node_modules/playwright-core ] || npm ci --prefix crates/console/browser --no-audit --no-fund
cargo build --profile "$([ "$PROFILE" = release ] && echo release || echo dev)" -p gridlease-cli -q

CONSOLE_PID=
cleanup() {
    [ -n "$CONSOLE_PID" ] && kill "$CONSOLE_PID" 2>/dev/null || true
    bench/seed-market.sh stop >/dev/null || true
}
trap cleanup EXIT

bench/seed-market.sh
RPC=$(sed -n 's/^RPC=//p' "$STATE")

LOG=$(mktemp)
START=$(date +%s.%N)
"target/$PROFILE/gridlease" console --node "$RPC" --listen "127.0.0.1:$CONSOLE_PORT" 2>"$LOG" &
CONSOLE_PID=$!
URL="http://127.0.0.1:$CONSOLE_PORT"
# Ready once the market page shows every lease.
want=$(echo "$LEASES" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')   # 10000 -> 10,000, as the page says
for _ in $(seq 600); do
    if curl -sf "$URL/" | grep -q "Active leases</dt><dd>$want<"; then break; fi
    sleep 0.1
done
READY=$(printf '%.2f' "$(echo "$(date +%s.%N) - $START" | bc)")
curl -sf "$URL/" | grep -q "Active leases</dt><dd>$want<" || { echo "the console never showed $LEASES leases" >&2; cat "$LOG" >&2; exit 1; }
READ_MS=$(curl -sf "$URL/" | sed -n 's/.*(read in \([0-9]*\) ms).*/\1/p')

echo
echo "console over $PROVIDERS providers and $LEASES active leases ($PROFILE build):"
echo "- from start to the whole market read: ${READY} s; one snapshot of the market: ${READ_MS} ms"
# The lease history from past blocks (the journal's backfill): the time its log line names.
for _ in $(seq 600); do grep -q "read the lease history" "$LOG" && break; sleep 0.1; done
HISTORY=$(python3 - "$LOG" "$START" <<'PY'
import datetime, re, sys
text = re.sub(r"\x1b\[[0-9;]*m", "", open(sys.argv[1]).read())
line = next((l for l in text.splitlines() if "read the lease history" in l), None)
if line is None:
    print("never (see the console's log)")
else:
    at = datetime.datetime.fromisoformat(line.split()[0].replace("Z", "+00:00")).timestamp()
    print(f"{at - float(sys.argv[2]):.2f} s")
PY
)
echo "- from start to the lease history read from past blocks: ${HISTORY}"
echo
# The block with the most events of the seeding, for the heaviest block page.
BUSY=$(curl -sf "$RPC/blocks?limit=100" | python3 -c 'import json,sys; b=max(json.load(sys.stdin)["blocks"], key=lambda b: b["events"]); print(b["height"], b["txs"], b["events"])')
read -r BUSY_HEIGHT BUSY_TXS BUSY_EVENTS <<<"$BUSY"
echo "- the busiest block: $BUSY_HEIGHT, $BUSY_TXS transactions and $BUSY_EVENTS events"
echo
CONSOLE_URL=$URL RUNS=${RUNS:-5} SCREENSHOTS=${SCREENSHOTS:-target/console-screenshots} EXTRA="busiest block=/blocks/$BUSY_HEIGHT,chain page below it=/blocks?before=$((BUSY_HEIGHT + 1))" \
    node crates/console/browser/console.perf.mjs
