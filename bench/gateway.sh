#!/usr/bin/env bash
# Issue 13's benchmark: what each proxy adds to a call of the mock OpenAI upstream, at fixed
# rates, and the highest rate each sustains, in one run on this machine:
#   (1) the mock directly, (2) the gridlease gateway, (3) nginx with a plain proxy_pass,
#   (4) the LiteLLM proxy (from PyPI).
# Load: oha, non-streaming chat completions, fixed rates with -q, then no limit.
#
# Usage: bench/gateway.sh [RATE ...]         (default: 1000 5000)
# Environment: DURATION (s per run, 10), CONCURRENCY (64), SKIP_LITELLM=1,
#   TOOLS (where oha and LiteLLM get installed when missing; bench/.tools), KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=("$@")
[ ${#RATES[@]} -eq 0 ] && RATES=(1000 5000)
DURATION=${DURATION:-10}
CONCURRENCY=${CONCURRENCY:-64}
TOOLS=${TOOLS:-$PWD/bench/.tools}
MOCK=38090 GATEWAY=38000 NGINX=38080 LITELLM=38400
# LiteLLM refuses to start without a master key; every target gets the same header.
KEY=sk-gridlease-bench-0123456789abcdef

# --- tools -------------------------------------------------------------------------------
if command -v oha >/dev/null; then OHA=$(command -v oha); else
    OHA=$TOOLS/bin/oha
    [ -x "$OHA" ] || cargo install oha --locked --root "$TOOLS"
fi
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || apt-get install -y nginx-light
NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
if [ "${SKIP_LITELLM:-0}" != 1 ] && [ ! -x "$TOOLS/litellm/bin/litellm" ]; then
    python3 -m venv "$TOOLS/litellm"
    "$TOOLS/litellm/bin/pip" install --quiet --disable-pip-version-check 'litellm[proxy]'
fi
cargo build --release -p gridlease-cli -p gridlease-gateway
BIN=target/release

WORK=$(mktemp -d -t gridlease-gateway-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# --- the four targets --------------------------------------------------------------------
"$BIN/gridlease-mock-openai" --listen "127.0.0.1:$MOCK" --tokens 16 >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
"$BIN/gridlease" gateway --home "$WORK/home" --listen "127.0.0.1:$GATEWAY" \
    --route "llama=http://127.0.0.1:$MOCK" >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
cat >"$WORK/nginx.conf" <<NGINX
worker_processes auto;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 8192; }
http {
    access_log off;
    upstream mock { server 127.0.0.1:$MOCK; keepalive 256; }
    server {
        listen 127.0.0.1:$NGINX;
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
NGINX
"$NGINX_BIN" -p "$WORK" -c "$WORK/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
TARGETS=(direct gateway nginx)
declare -A URL=(
    [direct]="http://127.0.0.1:$MOCK"
    [gateway]="http://127.0.0.1:$GATEWAY"
    [nginx]="http://127.0.0.1:$NGINX"
)
if [ "${SKIP_LITELLM:-0}" != 1 ]; then
    cat >"$WORK/litellm.yaml" <<YAML
model_list:
  - model_name: llama
    litellm_params:
      model: openai/llama
      api_base: http://127.0.0.1:$MOCK/v1
      api_key: not-needed
general_settings:
  master_key: $KEY
YAML
    "$TOOLS/litellm/bin/litellm" --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LITELLM" \
        >"$WORK/litellm.log" 2>&1 &
    PIDS+=($!)
    TARGETS+=(litellm)
    URL[litellm]="http://127.0.0.1:$LITELLM"
fi

BODY='{"model":"llama","messages":[{"role":"user","content":"Say hello in one word."}]}'
for t in "${TARGETS[@]}"; do
    for _ in $(seq 1 120); do
        if curl -sf -o /dev/null -H 'content-type: application/json' \
            -H "authorization: Bearer $KEY" -d "$BODY" \
            "${URL[$t]}/v1/chat/completions"; then continue 2; fi
        sleep 0.5
    done
    echo "$t does not answer; see $WORK/$t.log" >&2
    exit 1
done

# --- load --------------------------------------------------------------------------------
run() { # target rate(0 = unlimited) -> json file
    local t=$1 rate=$2 out="$WORK/$1-$2.json"
    local limit=()
    [ "$rate" != 0 ] && limit=(-q "$rate")
    "$OHA" -z "${DURATION}s" -c "$CONCURRENCY" "${limit[@]}" --no-tui --output-format json \
        -m POST -H 'content-type: application/json' -H "authorization: Bearer $KEY" -d "$BODY" \
        "${URL[$t]}/v1/chat/completions" >"$out"
    echo "$out"
}
RESULTS=()
for rate in "${RATES[@]}" 0; do
    for t in "${TARGETS[@]}"; do
        echo "== $t at ${rate/#0/max} req/s for ${DURATION}s" >&2
        RESULTS+=("$t:$rate:$(run "$t" "$rate")")
    done
done

# Streaming: time to first byte of an SSE answer (curl's time_starttransfer), sequentially.
STREAM='{"model":"llama","stream":true,"messages":[{"role":"user","content":"Say hello."}]}'
TTFT_N=${TTFT_REQUESTS:-300}
for t in "${TARGETS[@]}"; do
    n=$TTFT_N
    # LiteLLM takes about half a second a request here: a tenth as many.
    [ "$t" = litellm ] && n=$((TTFT_N / 10))
    echo "== $t: $n streamed requests, time to first byte" >&2
    for _ in $(seq 1 "$n"); do
        curl -s -N -o /dev/null -w '%{time_starttransfer}\n' -H 'content-type: application/json' \
            -H "authorization: Bearer $KEY" -d "$STREAM" "${URL[$t]}/v1/chat/completions"
    done >"$WORK/ttft-$t.txt"
    RESULTS+=("ttft-$t:0:$WORK/ttft-$t.txt")
done

python3 - "${RESULTS[@]}" <<'PY'
import json, sys
rows = {}
ttft = {}
def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]
for arg in sys.argv[1:]:
    t, rate, path = arg.split(":", 2)
    if t.startswith("ttft-"):
        xs = [float(l) * 1000 for l in open(path) if l.strip()]
        ttft[t[5:]] = (pct(xs, 0.5), pct(xs, 0.99), len(xs))
        continue
    d = json.load(open(path))
    s, p = d["summary"], d["latencyPercentiles"]
    rows[(t, int(rate))] = {
        "rps": s["requestsPerSec"], "ok": s["successRate"],
        "p50": p["p50"] * 1000, "p99": p["p99"] * 1000,
    }
targets = [t for t in ["direct", "gateway", "nginx", "litellm"] if (t, 0) in rows]
rates = sorted({r for _, r in rows if r})
print(f"## Added latency over the direct call (ms), oha, {sys.argv and ''}fixed rates")
print()
print("| target | rate req/s | achieved | success | p50 ms | p99 ms | +p50 ms | +p99 ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rates:
    base = rows[("direct", r)]
    for t in targets:
        x = rows[(t, r)]
        print(f"| {t} | {r} | {x['rps']:.0f} | {x['ok']*100:.1f}% | {x['p50']:.3f} | {x['p99']:.3f} | "
              f"{x['p50']-base['p50']:+.3f} | {x['p99']-base['p99']:+.3f} |")
print()
print("| target | highest rate (no limit) req/s | success | p50 ms | p99 ms |")
print("|---|---:|---:|---:|---:|")
for t in targets:
    x = rows[(t, 0)]
    print(f"| {t} | {x['rps']:.0f} | {x['ok']*100:.1f}% | {x['p50']:.3f} | {x['p99']:.3f} |")
print()
print("| streamed | requests | first byte p50 ms | p99 ms | +p50 ms | +p99 ms |")
print("|---|---:|---:|---:|---:|---:|")
for t in targets:
    if t in ttft:
        p50, p99, n = ttft[t]
        b50, b99, _ = ttft["direct"]
        print(f"| {t} | {n} | {p50:.3f} | {p99:.3f} | {p50-b50:+.3f} | {p99-b99:+.3f} |")
print()
for r in rates:
    base = rows[("direct", r)]
    over = {t: (rows[(t, r)]["p50"] - base["p50"], rows[(t, r)]["p99"] - base["p99"]) for t in targets if t != "direct"}
    g = over.get("gateway")
    line = f"at {r} req/s: gateway adds p50 {g[0]:.3f} ms, p99 {g[1]:.3f} ms"
    if "nginx" in over and over["nginx"][0] > 0:
        line += f"; vs nginx {g[0]/over['nginx'][0]:.2f}x (p50), {g[1]/max(over['nginx'][1],1e-9):.2f}x (p99)"
    if "litellm" in over and g[0] > 0:
        line += f"; LiteLLM adds {over['litellm'][0]/g[0]:.0f}x the gateway's p50 overhead"
    print(line)
PY
echo
echo "All processes share this machine's $(nproc) cores (the load generator included)."
