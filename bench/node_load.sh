#!/usr/bin/env bash
# Issue 4's benchmark: a one-validator node on 127.0.0.1 under signed bank sends submitted over
# RPC by gridlease-loadgen, at a few offered rates; prints committed tx/s, submit-to-commit
# latency, block times and the CPU the node and the generator used, per rate.
#
# Usage: bench/node_load.sh [RATE ...]      RATE in tx/s, 0 = as fast as the generator can
#                                           (default: 2000 5000 10000 0)
# Environment: DURATION (s, 30), ACCOUNTS (1000), CONCURRENCY (128), SEED (1),
#   BLOCK_TIME_MS (unset: the node's default, 1 s), RPC_PORT (36657), P2P_PORT (36656),
#   KEEP=1 keeps the work directory (node home, log, JSON summaries).
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=("$@")
[ ${#RATES[@]} -eq 0 ] && RATES=(2000 5000 10000 0)
DURATION=${DURATION:-30}
ACCOUNTS=${ACCOUNTS:-1000}
CONCURRENCY=${CONCURRENCY:-128}
SEED=${SEED:-1}
RPC_PORT=${RPC_PORT:-36657}
P2P_PORT=${P2P_PORT:-36656}
RPC="http://127.0.0.1:${RPC_PORT}"

cargo build --release -p gridlease-node -p gridlease-loadgen
BIN=target/release

WORK=$(mktemp -d -t gridlease-bench.XXXXXX)
NODE_PID=
cleanup() {
    if [ -n "$NODE_PID" ]; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# Genesis funds every benchmark account (the generator derives the same keys from SEED).
FUND_ARGS=()
while read -r line; do FUND_ARGS+=(--fund "$line"); done < <(
    "$BIN/gridlease-loadgen" accounts --seed "$SEED" --count "$ACCOUNTS" \
        --coins 1000000000000ugrid,1000000000000uusdc
)
"$BIN/gridlease-node" init --home "$WORK/node" --chain-id gridlease-bench "${FUND_ARGS[@]}" >/dev/null

RUN_ARGS=(run --home "$WORK/node" --rpc-addr "127.0.0.1:$RPC_PORT" --p2p-addr "127.0.0.1:$P2P_PORT")
[ -n "${BLOCK_TIME_MS:-}" ] && RUN_ARGS+=(--block-time-ms "$BLOCK_TIME_MS")
"$BIN/gridlease-node" "${RUN_ARGS[@]}" >"$WORK/node.stdout" 2>"$WORK/node.log" &
NODE_PID=$!
echo "node pid $NODE_PID, rpc $RPC, work dir $WORK ($ACCOUNTS accounts, ${DURATION}s per rate)"

SUMMARIES=()
for rate in "${RATES[@]}"; do
    label="${rate} tx/s"
    [ "$rate" = 0 ] && label="max"
    summary="$WORK/run-$rate.json"
    "$BIN/gridlease-loadgen" run --rpc "$RPC" --seed "$SEED" --count "$ACCOUNTS" \
        --rate "$rate" --duration "$DURATION" --concurrency "$CONCURRENCY" \
        --label "$label" --summary "$summary" --node-pid "$NODE_PID"
    SUMMARIES+=("$summary")
    echo
done

echo "## Results: block time ${BLOCK_TIME_MS:-1000} ms, ${DURATION} s per rate, $ACCOUNTS accounts, concurrency $CONCURRENCY, $(nproc) cores"
echo
"$BIN/gridlease-loadgen" table "${SUMMARIES[@]}"
echo
echo "committed tx/s = committed / (last commit seen - first submit); latency = block event"
echo "arrival - submit start; CPU = cores used from first submit to end of drain (node/generator)."
