#!/usr/bin/env python3
"""Throughput of `wafer serve` with the prediction log on (every request logged) against the
same server with it off (`--log-sample 0`): wrk, 32 connections on 127.0.0.1, iris, rounds
alternated (off, on, five times each) so that drift of the machine falls on both. Prints each round
and the ratio of the medians; the target is at least 0.90.

    python3 tools/bench_log.py        (BENCH_DURATION=10s by default, as tools/bench.py)

Needs `wrk` (Debian; tools/bench.sh installs it), the release binary and the guest.
"""

import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import MODEL, ROOT, WAFER, start, stop, wait_for_prediction, wrk  # noqa: E402

PORT = 18391
ROUNDS = 5


def main() -> None:
    fx = json.loads((ROOT / "models" / MODEL / "test_inputs.json").read_text())
    body = json.dumps({"inputs": [{"name": fx["input"], "shape": [1, 4], "datatype": "FP32",
                                   "data": fx["data"][0]}]}).encode()
    url = f"http://127.0.0.1:{PORT}/v2/models/{MODEL}/infer"
    results = {"off": [], "on": []}
    with tempfile.TemporaryDirectory() as tmp:
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(body)
        for round_ in range(ROUNDS):
            for mode in ["off", "on"]:
                log = ["--log-sample", "0"] if mode == "off" else [
                    "--log-db", str(Path(tmp) / f"log-{round_}.db")]
                proc = start([str(WAFER), "serve", "models", "--addr", f"127.0.0.1:{PORT}", *log])
                try:
                    wait_for_prediction(url, body, proc)
                    r = wrk(url, body_file, 32)
                finally:
                    stop(proc)
                results[mode].append(r["rps"])
                print(f"round {round_ + 1}, log {mode:3}: {r['rps']:9.0f} req/s, p50 {r['p50_us']:.0f} us, p99 {r['p99_us']:.0f} us")
    off, on = statistics.median(results["off"]), statistics.median(results["on"])
    print(f"log off {off:.0f} req/s, log on {on:.0f} req/s: on/off = {on / off:.3f} (target >= 0.90)")


if __name__ == "__main__":
    main()
