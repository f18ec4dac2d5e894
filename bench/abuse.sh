#!/usr/bin/env bash
# Issue 10's abuse benchmark: honest signed sends at an offered rate on a one-validator node,
# first alone, then while `gridlease-loadgen flood` posts, as fast as its concurrency allows,
# transactions that must never take the mempool (unfunded strangers declaring huge fees,
# funded accounts sending only sequences behind a gap). Prints committed tx/s and latency
# of the honest load in both runs, and the flood's answers by HTTP status.
#
# Usage: bench/abuse.sh [RATE]          honest offered rate in tx/s (default 2000; 0 = max)
# Environment: DURATION (s, 20), ACCOUNTS (1000 honest), ATTACKERS (200 funded attackers),
#   CONCURRENCY (128 honest), FLOOD_CONCURRENCY (64), BLOCK_TIME_MS (unset: 1 s),
#   RPC_PORT (36757), P2P_PORT (36756), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${1:-2000}
DURATION=${DURATION:-20}
ACCOUNTS=${ACCOUNTS:-1000}
ATTACKERS=${ATTACKERS:-200}
CONCURRENCY=${CONCURRENCY:-128}
FLOOD_CONCURRENCY=${FLOOD_CONCURRENCY:-64}
RPC_PORT=${RPC_PORT:-36757}
P2P_PORT=${P2P_PORT:-36756}
RPC="http://127.0.0.1:${RPC_PORT}"

cargo build --release -p gridlease-node -p gridlease-loadgen
BIN=target/release

WORK=$(mktemp -d -t gridlease-abuse.XXXXXX)
NODE_PID=
FLOOD_PID=
cleanup() {
    for pid in $FLOOD_PID $NODE_PID; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FUND_ARGS=()
while read -r line; do FUND_ARGS+=(--fund "$line"); done < <(
    "$BIN/gridlease-loadgen" accounts --seed 1 --count "$ACCOUNTS" --coins 1000000000000ugrid
    "$BIN/gridlease-loadgen" accounts --seed 2 --count "$ATTACKERS" --coins 1000000000000ugrid
)
"$BIN/gridlease-node" init --home "$WORK/node" --chain-id gridlease-abuse "${FUND_ARGS[@]}" >/dev/null
RUN_ARGS=(run --home "$WORK/node" --rpc-addr "127.0.0.1:$RPC_PORT" --p2p-addr "127.0.0.1:$P2P_PORT")
[ -n "${BLOCK_TIME_MS:-}" ] && RUN_ARGS+=(--block-time-ms "$BLOCK_TIME_MS")
"$BIN/gridlease-node" "${RUN_ARGS[@]}" >"$WORK/node.stdout" 2>"$WORK/node.log" &
NODE_PID=$!
echo "node pid $NODE_PID, rpc $RPC, work dir $WORK"

honest() {
    "$BIN/gridlease-loadgen" run --rpc "$RPC" --seed 1 --count "$ACCOUNTS" --rate "$RATE" \
        --duration "$DURATION" --concurrency "$CONCURRENCY" --label "$1" --summary "$2" \
        --node-pid "$NODE_PID"
}

honest "honest alone" "$WORK/alone.json"
echo
"$BIN/gridlease-loadgen" flood --rpc "$RPC" --seed 2 --count "$ATTACKERS" \
    --duration "$((DURATION + 15))" --concurrency "$FLOOD_CONCURRENCY" >"$WORK/flood.txt" &
FLOOD_PID=$!
sleep 5
honest "honest + flood" "$WORK/flooded.json"
wait "$FLOOD_PID" || true
FLOOD_PID=

echo
echo "## Abuse: honest load at ${RATE} tx/s offered, ${DURATION} s, $(nproc) cores, flood concurrency $FLOOD_CONCURRENCY"
echo
"$BIN/gridlease-loadgen" table "$WORK/alone.json" "$WORK/flooded.json"
echo
cat "$WORK/flood.txt"
python3 - "$WORK/alone.json" "$WORK/flooded.json" <<'PY' || true
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
def pick(d, *names):
    for n in names:
        if n in d: return d[n]
    return None
ta, tb = pick(a, "committed_tps"), pick(b, "committed_tps")
la, lb = pick(a.get("latency_ms", {}), "p50"), pick(b.get("latency_ms", {}), "p50")
if ta and tb: print(f"honest committed tx/s with flood / alone: {tb / ta:.3f}")
if la and lb: print(f"honest p50 latency with flood / alone: {lb / la:.3f}")
PY
