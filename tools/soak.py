#!/usr/bin/env python3
"""Soak test: `wafer serve` on the bundled models under 64 keep-alive connections for 60 s on
127.0.0.1 (bounded in time), a mix of JSON and binary-extension requests on iris and digits plus
a share of malformed ones. Reports requests, errors (any 5xx, transport error, or a status the
request's kind did not expect), throughput, latency percentiles, and the server's RSS after a
warm-up and at the end (target: 0 errors, RSS growth <= 5%).

    python3 tools/soak.py [--connections 64] [--seconds 60] [--warmup 10]

Needs the release binary and the guest: `cargo build --release -p wafer` and
`cargo build --profile guest --target wasm32-wasip2 -p wafer-guest -p wafer-guest-lookup`.
Standard library only.
"""

import argparse
import http.client
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def requests():
    """(path, headers, body, expected status) for each kind of request in the mix."""
    iris = json.load(open(os.path.join(ROOT, "models/iris/test_inputs.json")))
    digits = json.load(open(os.path.join(ROOT, "models/digits/test_inputs.json")))

    def v2(fx, n):
        rows = fx["data"][:n]
        return json.dumps({"inputs": [{"name": fx["input"], "shape": [len(rows), len(rows[0])],
                                       "datatype": "FP32", "data": rows}]}).encode()

    json_headers = {"content-type": "application/json"}
    rows = iris["data"][:4]
    header = json.dumps({"inputs": [{"name": iris["input"], "shape": [4, 4], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 64}}],
                         "outputs": [{"name": "probabilities",
                                      "parameters": {"binary_data": True}}]}).encode()
    binary = header + b"".join(struct.pack("<f", v) for row in rows for v in row)
    binary_headers = {"content-type": "application/octet-stream",
                      "inference-header-content-length": str(len(header))}
    return [
        ("/v2/models/iris/infer", json_headers, v2(iris, 1), 200),
        ("/v2/models/iris/infer", json_headers, v2(iris, 30), 200),
        ("/v2/models/digits/infer", json_headers, v2(digits, 8), 200),
        ("/v2/models/iris/infer", binary_headers, binary, 200),
        ("/v2/models/iris/infer", json_headers, b'{"inputs": [', 400),
        ("/v2/models/nope/infer", json_headers, v2(iris, 1), 404),
    ]


def client(base_port, mix, deadline, stats, lock, index):
    conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=30)
    latencies, counts, errors = [], {}, []
    i = index
    while time.monotonic() < deadline:
        path, headers, body, expected = mix[i % len(mix)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except Exception as e:  # transport errors count, then reconnect
            errors.append(f"{path}: {e!r}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", base_port, timeout=30)
            continue
        latencies.append(time.perf_counter() - started)
        counts[status] = counts.get(status, 0) + 1
        if status != expected:
            errors.append(f"{path}: status {status}, expected {expected}")
    conn.close()
    with lock:
        stats["latencies"].extend(latencies)
        stats["errors"].extend(errors)
        for k, v in counts.items():
            stats["statuses"][k] = stats["statuses"].get(k, 0) + v


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=10)
    args = parser.parse_args()

    env = dict(os.environ, WAFER_LOG="warn")
    server = subprocess.Popen(
        [os.path.join(ROOT, "target/release/wafer"), "serve", "models", "--addr", "127.0.0.1:0",
         "--max-instances", "128"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True)
    try:
        port = None
        for line in server.stdout:
            m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            sys.exit("the server exited before listening")
        mix = requests()
        lock = threading.Lock()
        total_seconds = args.warmup + args.seconds
        deadline = time.monotonic() + total_seconds
        stats = {"latencies": [], "errors": [], "statuses": {}}
        threads = [threading.Thread(target=client, args=(port, mix, deadline, stats, lock, i))
                   for i in range(args.connections)]
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(args.warmup)
        rss_start = rss_kib(server.pid)
        samples = [(0.0, rss_start)]
        while time.monotonic() < deadline:
            time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
            samples.append((time.monotonic() - started - args.warmup, rss_kib(server.pid)))
        for t in threads:
            t.join()
        elapsed = time.monotonic() - started
        rss_end = rss_kib(server.pid)
        alive = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=30)

    lat = sorted(stats["latencies"])
    n = len(lat)
    pct = lambda p: lat[min(n - 1, int(p / 100 * n))] * 1e3 if n else float("nan")
    growth = (rss_end - rss_start) / rss_start * 100
    print(f"connections           {args.connections}")
    print(f"duration              {elapsed:.1f} s ({args.warmup:.0f} s warm-up + {args.seconds:.0f} s)")
    print(f"requests              {n}  ({n / elapsed:.0f}/s)")
    print(f"statuses              {dict(sorted(stats['statuses'].items()))}")
    print(f"errors                {len(stats['errors'])}")
    for e in stats["errors"][:10]:
        print(f"  {e}")
    print(f"latency ms            p50 {pct(50):.2f}  p99 {pct(99):.2f}  max {pct(100):.2f}")
    print(f"RSS after warm-up     {rss_start / 1024:.1f} MiB")
    print(f"RSS at the end        {rss_end / 1024:.1f} MiB  ({growth:+.2f}%)")
    print("RSS samples (s, MiB)  " + ", ".join(f"{t:.0f}:{r / 1024:.0f}" for t, r in samples))
    print(f"server alive          {alive}")
    ok = not stats["errors"] and growth <= 5 and alive
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
