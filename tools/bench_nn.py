#!/usr/bin/env python3
"""The wasi-nn flavour against the self-contained guest, in one run (`bash tools/bench_nn.sh`).

Prints, for BENCHMARKS.md:
  * HTTP throughput and latency (wrk, 1 and 32 connections, a single-row v2 JSON request) of
    `wafer serve` and `wafer serve --backend wasi-nn` on the same model (iris, digits_wide);
  * the built component's size in each flavour;
  * peak RSS of `wafer serve` on a model of over 100 MB (tools/big_model.py) with 1 and with 64
    requests in flight, in each flavour.
The in-process figures (predict against native tract) come from criterion, run by the script
before this. Load goes only to 127.0.0.1, bounded in time.
"""

import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, TARGET, WAFER, free_port, post, start, stop, wait_for_prediction, wrk  # noqa: E402

FLAVOURS = ["guest", "wasi-nn"]


def serve(repo: Path, flavour: str, build: Path):
    port = free_port()
    proc = start([str(WAFER), "serve", str(repo), "--backend", flavour, "--addr", f"127.0.0.1:{port}",
                  "--build-dir", str(build), "--log-sample", "0", "--max-instances", "64",
                  "--strict-readiness", "false"])
    return proc, f"http://127.0.0.1:{port}"


def request(model: str) -> bytes:
    inputs = json.loads((ROOT / "models" / model / "test_inputs.json").read_text())
    row = inputs["data"][0]
    return json.dumps({"inputs": [{"name": inputs["input"], "shape": [1, len(row)],
                                   "datatype": "FP32", "data": row}]}).encode()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def peak_rss_under(url: str, body: bytes, pid: int, in_flight: int, seconds: float) -> tuple[int, int]:
    """Peak RSS (KiB) while `in_flight` clients post back to back; and how many answered 200."""
    stop_at = time.monotonic() + seconds
    ok = [0] * in_flight

    def client(i: int) -> None:
        while time.monotonic() < stop_at:
            if post(url, body, timeout=60) == 200:
                ok[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(in_flight)]
    for t in threads:
        t.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, rss_kib(pid))
        time.sleep(0.02)
    return peak, sum(ok)


def main() -> None:
    work = TARGET / "bench-nn"
    work.mkdir(parents=True, exist_ok=True)
    body_file = work / "body.json"
    results = {"http": {}, "size": {}, "rss": {}}

    for model in ["iris", "digits_wide"]:
        body = request(model)
        body_file.write_bytes(body)
        for flavour in FLAVOURS:
            proc, base = serve(ROOT / "models", flavour, work / f"build-{flavour}")
            url = f"{base}/v2/models/{model}/infer"
            try:
                wait_for_prediction(url, body, proc)
                for c in [1, 32]:
                    results["http"][f"{model}/{flavour}/{c}"] = wrk(url, body_file, c)
            finally:
                stop(proc)
            results["size"][f"{model}/{flavour}"] = (work / f"build-{flavour}" / f"{model}.wasm").stat().st_size

    big = work / "models"
    if not (big / "big" / "model.onnx").is_file():
        raise SystemExit(f"run tools/big_model.py {big} first")
    x = [0.01 * (i % 100) for i in range(4096)]
    body = json.dumps({"inputs": [{"name": "X", "shape": [1, 4096], "datatype": "FP32", "data": x}]}).encode()
    for flavour in FLAVOURS:
        proc, base = serve(big, flavour, work / f"build-big-{flavour}")
        url = f"{base}/v2/models/big/infer"
        try:
            wait_for_prediction(url, body, proc)
            idle = rss_kib(proc.pid)
            one = peak_rss_under(url, body, proc.pid, 1, 5)
            many = peak_rss_under(url, body, proc.pid, 64, 10)
            results["rss"][flavour] = {"idle_kib": idle, "one_kib": one[0], "one_ok": one[1],
                                       "many_kib": many[0], "many_ok": many[1]}
        finally:
            stop(proc)
        results["size"][f"big/{flavour}"] = (work / f"build-big-{flavour}" / "big.wasm").stat().st_size

    print(json.dumps(results, indent=1))
    print()
    print("| model | connections | wafer (guest) req/s | wafer (wasi-nn) req/s | wasi-nn / guest | p50 guest | p50 wasi-nn |")
    print("|---|---|---|---|---|---|---|")
    for model in ["iris", "digits_wide"]:
        for c in [1, 32]:
            g, n = results["http"][f"{model}/guest/{c}"], results["http"][f"{model}/wasi-nn/{c}"]
            print(f"| {model} | {c} | {g['rps']:,.0f} | {n['rps']:,.0f} | {n['rps'] / g['rps']:.2f} | "
                  f"{g['p50_us']:.0f} µs | {n['p50_us']:.0f} µs |")
    print()
    print("| component | guest | wasi-nn | wasi-nn / guest |")
    print("|---|---|---|---|")
    for model in ["iris", "digits_wide", "big"]:
        g, n = results["size"][f"{model}/guest"], results["size"][f"{model}/wasi-nn"]
        print(f"| {model} | {g / 2**20:.2f} MiB | {n / 2**20:.2f} MiB | {n / g:.3f} |")
    print()
    print("| flavour | idle RSS | peak RSS, 1 in flight | peak RSS, 64 in flight | growth 1 → 64 |")
    print("|---|---|---|---|---|")
    for flavour in FLAVOURS:
        r = results["rss"][flavour]
        print(f"| {flavour} | {r['idle_kib'] / 1024:.0f} MiB | {r['one_kib'] / 1024:.0f} MiB | "
              f"{r['many_kib'] / 1024:.0f} MiB | {100 * (r['many_kib'] / r['one_kib'] - 1):+.1f}% |")


if __name__ == "__main__":
    main()
