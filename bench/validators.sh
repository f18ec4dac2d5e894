#!/usr/bin/env bash
# Issue 12's benchmark: the same signed-send load on a one-validator chain and on a
# four-validator chain (four node processes on 127.0.0.1 made by `gridlease-node testnet`),
# side by side in one run: committed tx/s, submit-to-commit latency (p50/p99) and block time.
# On four validators the generator spreads its accounts over the four RPCs (there is no
# mempool gossip: a node commits what it proposes).
#
# Usage: bench/validators.sh [RATE ...]     RATE in tx/s, 0 = as fast as the generator can
#                                           (default: 3000 0)
# Environment: VALIDATORS ("1 4"), DURATION (s, 20), ACCOUNTS (1000), CONCURRENCY (128),
#   SEED (1), BLOCK_TIME_MS (500), KEEP=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=("$@")
[ ${#RATES[@]} -eq 0 ] && RATES=(3000 0)
read -r -a SIZES <<<"${VALIDATORS:-1 4}"
DURATION=${DURATION:-20}
ACCOUNTS=${ACCOUNTS:-1000}
CONCURRENCY=${CONCURRENCY:-128}
SEED=${SEED:-1}
BLOCK_TIME_MS=${BLOCK_TIME_MS:-500}

cargo build --release -p gridlease-node -p gridlease-loadgen
BIN=target/release

WORK=$(mktemp -d -t gridlease-validators.XXXXXX)
PIDS=()
stop_nodes() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    PIDS=()
}
cleanup() {
    stop_nodes
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

FUND_ARGS=()
while read -r line; do FUND_ARGS+=(--fund "$line"); done < <(
    "$BIN/gridlease-loadgen" accounts --seed "$SEED" --count "$ACCOUNTS" \
        --coins 1000000000000ugrid,1000000000000uusdc
)

SUMMARIES=()
for n in "${SIZES[@]}"; do
    net="$WORK/net$n"
    "$BIN/gridlease-node" testnet --validators "$n" --home "$net" --chain-id gridlease-bench \
        --block-time-ms "$BLOCK_TIME_MS" --output json "${FUND_ARGS[@]}" >"$WORK/net$n.json"
    mapfile -t RPCS < <(python3 -c 'import json,sys; [print("http://"+n["rpc"]) for n in json.load(open(sys.argv[1]))]' "$WORK/net$n.json")
    for ((i = 0; i < n; i++)); do
        "$BIN/gridlease-node" run --home "$net/node$i" >"$net/node$i.stdout" 2>"$net/node$i.log" &
        PIDS+=($!)
    done
    ALSO=()
    for url in "${RPCS[@]:1}"; do ALSO+=(--also-rpc "$url"); done
    echo "== $n validator(s): ${RPCS[*]}"
    for rate in "${RATES[@]}"; do
        label="$n val, ${rate} tx/s"
        [ "$rate" = 0 ] && label="$n val, max"
        summary="$WORK/run-$n-$rate.json"
        "$BIN/gridlease-loadgen" run --rpc "${RPCS[0]}" "${ALSO[@]}" --seed "$SEED" \
            --count "$ACCOUNTS" --rate "$rate" --duration "$DURATION" \
            --concurrency "$CONCURRENCY" --label "$label" --summary "$summary" \
            --node-pid "${PIDS[0]}"
        SUMMARIES+=("$summary")
        echo
    done
    stop_nodes
done

echo "## Results: block time target $BLOCK_TIME_MS ms, ${DURATION} s per rate, $ACCOUNTS accounts, concurrency $CONCURRENCY, $(nproc) cores"
echo
"$BIN/gridlease-loadgen" table "${SUMMARIES[@]}"
echo
echo "All validators share this machine's cores; CPU node/gen is the first node's and the"
echo "generator's. Goal (issue 12): with 4 validators, block time <= 500 ms and >= 3000 tx/s."
