#!/usr/bin/env python3
"""Chaos on a real devnet: providers (daemon and workloads) are SIGKILLed and restarted at
random while a steady load runs through the gateway in front of a replicated deployment.

    cargo build -p gridlease-cli -p gridlease-node -p gridlease-demo-llm
    python3 bench/chaos.py [--duration 600] [--providers 5] [--replicas 3] [--down-share 0.05]
                           [--mean-down 30] [--seed 1] [--block-time-ms 1000] [--driver exec]

Each provider alternates up and down spells drawn from exponential distributions whose means
give `--down-share` of the time down (`--mean-down` seconds per outage). The devnet's watcher
reports leases down, the chain fails over those down past its grace, and the watcher sends the
manifest to their replacements. At the end the deployment is closed and the script prints:
the availability the load saw through the gateway, the time from each kill of a provider that
held a replica to the deployment serving all its replicas again (p50, max), and the escrow
check: what the escrow paid equals, to the unit, the sum over its leases of price x (blocks
leased - blocks its monitors reported down).
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRIDLEASE = os.environ.get("GRIDLEASE_BIN", os.path.join(ROOT, "target", "debug", "gridlease"))
PASSPHRASE = "devnet"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


def post(url, body, timeout=10):
    req = urllib.request.Request(
        url, data=body.encode(), headers={"content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def pids_working_under(directory):
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if cwd.startswith(directory + "/") or cwd == directory:
            found.append(int(entry))
    return found


class Provider:
    def __init__(self, info, env, log_dir):
        self.name = info["name"]
        self.address = info["address"]
        self.home = info["home"]
        self.env = env
        self.log = os.path.join(log_dir, f"chaos-{self.name}.log")
        self.child = None  # a daemon this script restarted
        self.up = True

    def pid(self):
        with open(os.path.join(self.home, "state", "daemon.json")) as f:
            return json.load(f)["pid"]

    def kill(self, driver):
        try:
            os.kill(self.pid(), signal.SIGKILL)
        except (OSError, KeyError, ValueError):
            pass
        if driver == "exec":
            for p in pids_working_under(self.home):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        else:
            out = subprocess.run(
                ["podman", "ps", "-q", "--filter", f"label=gridlease.lease_id"],
                capture_output=True, text=True,
            ).stdout.split()
            for cid in out:
                labels = subprocess.run(
                    ["podman", "inspect", "-f", "{{json .Config.Labels}}", cid],
                    capture_output=True, text=True,
                ).stdout
                if self.address in labels:
                    subprocess.run(["podman", "kill", cid], capture_output=True)
        if self.child:
            self.child.wait()
            self.child = None
        self.up = False

    def start(self):
        try:
            os.remove(os.path.join(self.home, "state", "daemon.json"))
        except OSError:
            pass
        log = open(self.log, "a")
        self.child = subprocess.Popen(
            [GRIDLEASE, "provider", "run", "--stop-workloads-on-exit", "--home", self.home],
            env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        )
        self.up = True


def status(env, dseq):
    out = subprocess.run(
        [GRIDLEASE, "status", str(dseq), "--output", "json"],
        env=env, capture_output=True, text=True, timeout=30,
    )
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def ready_replicas(st):
    if not st:
        return 0
    return sum(1 for l in st.get("leases", []) if l.get("status", {}).get("phase") == "ready")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--providers", type=int, default=5)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--down-share", type=float, default=0.05)
    ap.add_argument("--mean-down", type=float, default=30.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--block-time-ms", type=int, default=1000)
    ap.add_argument("--driver", default="exec", choices=["exec", "podman"])
    ap.add_argument("--rate", type=float, default=10.0, help="requests per second")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = tempfile.mkdtemp(prefix="gridlease-chaos-")
    home = os.path.join(work, "devnet")
    port = free_port()
    rpc = f"http://127.0.0.1:{port}"
    env = dict(os.environ, GRIDLEASE_HOME=home, GRIDLEASE_NODE=rpc, GRIDLEASE_FROM="tenant",
               GRIDLEASE_PASSPHRASE=PASSPHRASE)
    devnet_log = open(os.path.join(work, "devnet.out"), "w")
    devnet = subprocess.Popen(
        [GRIDLEASE, "devnet", "--driver", args.driver, "--providers", str(args.providers),
         "--demo-replicas", str(args.replicas), "--block-time-ms", str(args.block_time_ms),
         "--rpc-port", str(port), "--home", home],
        stdout=devnet_log, stderr=devnet_log, env=env,
    )
    info_path = os.path.join(home, "devnet.json")
    deadline = time.time() + 240
    while not os.path.exists(info_path):
        if devnet.poll() is not None or time.time() > deadline:
            sys.exit(f"the devnet did not come up; see {work}/devnet.out")
        time.sleep(0.5)
    info = json.load(open(info_path))
    dseq = info["demo"]["dseq"]
    gateway = info["gateway"]
    providers = [Provider(p, env, os.path.join(home, "logs")) for p in info["providers"]]
    print(f"devnet up in {work}: {len(providers)} providers, deployment {dseq} with "
          f"{args.replicas} replicas, gateway {gateway}", flush=True)

    # Load: one request after another at about --rate per second.
    results = []
    stop = threading.Event()
    body = json.dumps({"model": "gridlease-demo-echo",
                       "messages": [{"role": "user", "content": "chaos"}]})

    def load():
        while not stop.is_set():
            t = time.time()
            try:
                code, _ = post(gateway + "/v1/chat/completions", body)
                results.append((t, code == 200))
            except Exception:
                results.append((t, False))
            time.sleep(max(0.0, 1.0 / args.rate - (time.time() - t)))

    loader = threading.Thread(target=load, daemon=True)
    loader.start()

    mean_up = args.mean_down * (1 - args.down_share) / args.down_share
    next_change = {p.name: time.time() + rng.expovariate(1 / mean_up) for p in providers}
    kills = []  # (time, provider name, held a replica)
    restore = []  # seconds from a kill to all replicas ready again
    pending = []  # kills waiting for all replicas to be ready
    down_time = {p.name: 0.0 for p in providers}
    went_down = {}
    end = time.time() + args.duration
    last_poll = 0.0
    while time.time() < end:
        now = time.time()
        for p in providers:
            if now < next_change[p.name]:
                continue
            if p.up:
                st = status(env, dseq)
                held = bool(st) and any(l["provider"] == p.address for l in st.get("leases", []))
                p.kill(args.driver)
                went_down[p.name] = now
                kills.append((now, p.name, held))
                if held:
                    pending.append(now)
                print(f"{now - (end - args.duration):7.1f}s  killed {p.name}"
                      f"{' (held a replica)' if held else ''}", flush=True)
                next_change[p.name] = now + rng.expovariate(1 / args.mean_down)
            else:
                p.start()
                down_time[p.name] += now - went_down.pop(p.name)
                print(f"{now - (end - args.duration):7.1f}s  restarted {p.name}", flush=True)
                next_change[p.name] = now + rng.expovariate(1 / mean_up)
        if pending and now - last_poll >= 1.0:
            last_poll = now
            if ready_replicas(status(env, dseq)) >= args.replicas:
                for k in pending:
                    restore.append(time.time() - k)
                pending = []
        time.sleep(0.2)
    for p in providers:
        if not p.up:
            down_time[p.name] += time.time() - went_down.pop(p.name)
            p.start()
    stop.set()
    loader.join()

    ok = sum(1 for _, good in results if good)
    total = len(results)
    # Close: every lease settles; then check the escrow against the leases' health records.
    subprocess.run([GRIDLEASE, "close", str(dseq)], env=env, capture_output=True, timeout=60)
    owner = info["tenant_address"]
    record = get(f"{rpc}/deployments/{owner}/{dseq}")
    escrow = record["escrow"]
    leases = []
    cursor = None
    while True:
        url = f"{rpc}/leases?owner={owner}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        page = get(url)
        leases += [l for l in page["leases"] if l["id"]["order"]["dseq"] == dseq]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    expected = Decimal(0)
    failovers = 0
    for l in leases:
        o = l["id"]["order"]
        lid = f"{o['owner']}/{o['dseq']}/{o['gseq']}/{o['oseq']}/{l['id']['provider']}"
        one = get(f"{rpc}/leases/{lid}")
        st = one["lease"]["state"]
        closed_at = st["at"]
        if st.get("reason") == "unhealthy":
            failovers += 1
        health = one.get("health") or {}
        down = health.get("down_blocks", 0)
        if health.get("down_since") is not None:
            down += closed_at - health["down_since"]
        blocks = closed_at - one["lease"]["created_at"] - down
        expected += Decimal(one["lease"]["price"]["amount"]) * blocks
    paid = Decimal(escrow["transferred"])
    lag = statistics.median(restore) if restore else None
    print()
    print(f"duration {args.duration}s, {len(providers)} providers, {args.replicas} replicas, "
          f"each provider down {100 * args.down_share:.0f}% on average "
          f"(measured: {', '.join(f'{n} {100 * t / args.duration:.1f}%' for n, t in down_time.items())})")
    print(f"kills: {len(kills)} ({sum(1 for k in kills if k[2])} of a provider holding a replica); "
          f"leases failed over by the chain: {failovers}; leases in all: {len(leases)}")
    print(f"availability through the gateway: {ok}/{total} = {100 * ok / max(total, 1):.3f}%")
    if restore:
        print(f"time to all replicas ready again after a kill: p50 {lag:.1f}s, max {max(restore):.1f}s")
    print(f"escrow paid {paid} {escrow['denom']}; leases' price x (blocks - down blocks) = {expected}")
    print("escrow check: " + ("exact" if paid == expected else f"MISMATCH by {paid - expected}"))
    devnet.send_signal(signal.SIGINT)
    try:
        devnet.wait(timeout=60)
    except subprocess.TimeoutExpired:
        devnet.kill()
    for p in providers:
        if p.child:
            p.child.send_signal(signal.SIGINT)
            try:
                p.child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.child.kill()
    sys.exit(0 if paid == expected else 1)


if __name__ == "__main__":
    main()
