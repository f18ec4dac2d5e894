#!/usr/bin/env bash
# Issue 6's measurement: time from `gridlease deploy` to the first successful request on a
# devnet (exec driver, 1 s blocks, 3 providers). Each run deploys the demo SDL, then polls its
# endpoint until HTTP 200, then closes the deployment. Prints every run and the p50.
#
# Usage: bench/deploy_latency.sh [RUNS]        (default 10)
# Environment: DRIVER (exec), RPC_PORT (36757), KEEP=1 keeps the devnet home and logs.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${1:-10}
DRIVER=${DRIVER:-exec}
RPC_PORT=${RPC_PORT:-36757}
RPC="http://127.0.0.1:${RPC_PORT}"

cargo build --release -p gridlease-cli -p gridlease-node -p gridlease-demo-llm
G=$PWD/target/release/gridlease

WORK=$(mktemp -d -t gridlease-deploy.XXXXXX)
DEVNET_PID=
cleanup() {
    if [ -n "$DEVNET_PID" ]; then
        kill -INT "$DEVNET_PID" 2>/dev/null || true
        wait "$DEVNET_PID" 2>/dev/null || true
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$G" devnet --home "$WORK/devnet" --driver "$DRIVER" --rpc-port "$RPC_PORT" > "$WORK/devnet.out" 2>&1 &
DEVNET_PID=$!
for _ in $(seq 1 600); do
    [ -f "$WORK/devnet/devnet.json" ] && break
    kill -0 "$DEVNET_PID" 2>/dev/null || { cat "$WORK/devnet.out"; exit 1; }
    sleep 0.2
done
[ -f "$WORK/devnet/devnet.json" ] || { echo "devnet did not come up"; cat "$WORK/devnet.out"; exit 1; }

export GRIDLEASE_HOME="$WORK/devnet" GRIDLEASE_NODE="$RPC" GRIDLEASE_FROM=tenant GRIDLEASE_PASSPHRASE=devnet
TIMES=()
for i in $(seq 1 "$RUNS"); do
    start=$(date +%s%N)
    out=$("$G" deploy "$WORK/devnet/demo.yaml" --output json)
    url=$(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["leases"][0]["endpoints"]["llm"][0])' <<<"$out")
    dseq=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["dseq"])' <<<"$out")
    until curl -sf -o /dev/null "$url/v1/models"; do sleep 0.01; done
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    TIMES+=("$ms")
    echo "run $i: deploy -> first successful request ${ms} ms (dseq $dseq, $url)"
    "$G" close "$dseq" > /dev/null
done
sorted=($(printf '%s\n' "${TIMES[@]}" | sort -n))
n=${#sorted[@]}
echo "deploy_latency/$DRIVER: $n runs, p50 ${sorted[$(( (n - 1) / 2 ))]} ms, min ${sorted[0]} ms, max ${sorted[$((n - 1))]} ms"
