#!/usr/bin/env bash
# A market at scale for a console to be measured on: a fresh one-validator node in a temporary
# directory, seeded through real signed transactions by `gridlease-loadgen market` with
# PROVIDERS registered providers (GPU models, regions, tiers) and LEASES active leases (each
# won in an auction of 1 to 3 bids), then left running in the background.
#
# Usage: bench/seed-market.sh        build, start and seed a node; print its RPC URL
#        bench/seed-market.sh stop   stop the node a previous run left (KEEP=1 keeps its files)
#
# Environment: PROVIDERS (1000), LEASES (10000), TENANTS (100), SEED (1), RPC_PORT (26657),
#   P2P_PORT (26656), BLOCK_TIME_MS (unset: the node's default, 1000), BID_WINDOW (unset: the
#   chain's default, 5 blocks), PROFILE (debug or release; debug), STATE (the file naming the
#   running node; ${TMPDIR:-/tmp}/gridlease-seed-market.env).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${STATE:-${TMPDIR:-/tmp}/gridlease-seed-market.env}

# The node a previous run left, if it is still a gridlease-node.
running_pid() {
    [ -f "$STATE" ] || return 1
    local pid
    pid=$(sed -n 's/^NODE_PID=//p' "$STATE")
    [ -n "$pid" ] && grep -q gridlease-node "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

if [ "${1:-}" = stop ]; then
    if [ ! -f "$STATE" ]; then
        echo "no seeded node recorded in $STATE"
        exit 0
    fi
    WORK=$(sed -n 's/^WORK=//p' "$STATE")
    if pid=$(running_pid); then
        kill "$pid"
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
        echo "stopped node $pid"
    else
        echo "the recorded node is not running"
    fi
    if [ "${KEEP:-0}" = 1 ]; then
        echo "kept $WORK"
    elif [ -n "$WORK" ] && [ -d "$WORK" ]; then
        rm -rf "$WORK"
    fi
    rm -f "$STATE"
    exit 0
fi
if [ $# -gt 0 ]; then
    echo "usage: $0 [stop]" >&2
    exit 2
fi
if pid=$(running_pid); then
    echo "a seeded node is still running (pid $pid, see $STATE): run \`$0 stop\` first" >&2
    exit 1
fi

PROVIDERS=${PROVIDERS:-1000}
LEASES=${LEASES:-10000}
TENANTS=${TENANTS:-100}
SEED=${SEED:-1}
RPC_PORT=${RPC_PORT:-26657}
P2P_PORT=${P2P_PORT:-26656}
PROFILE=${PROFILE:-debug}
RPC="http://127.0.0.1:${RPC_PORT}"

if (exec 3<>"/dev/tcp/127.0.0.1/$RPC_PORT") 2>/dev/null; then
    echo "port $RPC_PORT is taken: set RPC_PORT (and P2P_PORT) to free ones" >&2
    exit 1
fi

case "$PROFILE" in
    debug) cargo build -p gridlease-node -p gridlease-loadgen ;;
    release) cargo build --release -p gridlease-node -p gridlease-loadgen ;;
    *) echo "PROFILE must be debug or release, not $PROFILE" >&2; exit 2 ;;
esac
BIN=target/$PROFILE

WORK=$(mktemp -d -t gridlease-seed-market.XXXXXX)
NODE_PID=
SEEDED=0
cleanup() {
    if [ "$SEEDED" = 1 ]; then return; fi
    if [ -n "$NODE_PID" ]; then
        kill "$NODE_PID" 2>/dev/null || true
        wait "$NODE_PID" 2>/dev/null || true
        echo "seeding failed; the node's last lines:" >&2
        tail -n 20 "$WORK/node.log" >&2 || true
    fi
    rm -f "$STATE"
    echo "kept $WORK for inspection" >&2
}
trap cleanup EXIT

# Genesis funds every provider and tenant account (the seeder derives the same keys from SEED):
# fees and bid deposits in ugrid, escrow deposits in uusdc and uact.
FUND_ARGS=()
while read -r line; do FUND_ARGS+=(--fund "$line"); done < <(
    "$BIN/gridlease-loadgen" accounts --seed "$SEED" --count $((PROVIDERS + TENANTS)) \
        --coins 1000000000000000ugrid,1000000000000000uusdc,1000000000000000uact
)
INIT_ARGS=(init --home "$WORK/node" --chain-id gridlease-market)
[ -n "${BID_WINDOW:-}" ] && INIT_ARGS+=(--bid-window "$BID_WINDOW")
"$BIN/gridlease-node" "${INIT_ARGS[@]}" "${FUND_ARGS[@]}" >/dev/null

RUN_ARGS=(run --home "$WORK/node" --rpc-addr "127.0.0.1:$RPC_PORT" --p2p-addr "127.0.0.1:$P2P_PORT")
[ -n "${BLOCK_TIME_MS:-}" ] && RUN_ARGS+=(--block-time-ms "$BLOCK_TIME_MS")
nohup "$BIN/gridlease-node" "${RUN_ARGS[@]}" >"$WORK/node.log" 2>&1 </dev/null &
NODE_PID=$!
echo "$NODE_PID" >"$WORK/node.pid"
printf 'NODE_PID=%s\nWORK=%s\nRPC=%s\n' "$NODE_PID" "$WORK" "$RPC" >"$STATE"

for _ in $(seq 600); do
    curl -sf "$RPC/status" >/dev/null 2>&1 && break
    if ! kill -0 "$NODE_PID" 2>/dev/null; then
        echo "the node exited before its RPC answered" >&2
        exit 1
    fi
    sleep 0.1
done

echo "node pid $NODE_PID, rpc $RPC, home $WORK/node; seeding $PROVIDERS providers, $LEASES leases"
SECONDS=0
"$BIN/gridlease-loadgen" market --rpc "$RPC" --seed "$SEED" \
    --providers "$PROVIDERS" --tenants "$TENANTS" --leases "$LEASES"
SEEDED=1
echo
echo "seeded in ${SECONDS} s; the node keeps running in the background:"
echo "  RPC   $RPC"
echo "  pid   $NODE_PID (also in $WORK/node.pid)"
echo "  log   $WORK/node.log"
echo "stop it with: $0 stop"
