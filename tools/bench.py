#!/usr/bin/env python3
"""wafer's benchmark suite: every figure as a ratio measured side by side in one run.

Run it with `bash tools/bench.sh`, which installs what it needs and calls this. It writes
BENCHMARKS.md. Load goes only to 127.0.0.1, bounded in time (wrk -d) and count.

Sides compared, all on this machine in this run:
  * in-process (criterion, benches/inference.rs): native tract vs the wasm guest and vs the wasi-nn
    flavour (its graph run natively behind `wasi:nn`); a fresh instance
    with and without the parsed model in its snapshot;
  * HTTP (wrk, the same Lua script for every side): `wafer serve` (unbatched, and with dynamic
    batching) vs `wasmtime serve` on the same component, vs MLServer 1.7 with its scikit-learn
    runtime (unbatched, and with adaptive batching at the same batch size), vs a minimal hyper
    server that answers a fixed body (the loopback floor); 1, 8, 32 and 128 connections. Every
    server is started first; then ROUNDS rounds each load every side in turn at each connection
    count (the side that goes first rotates), so a slow spell of a shared machine falls on every
    side alike. A side's figure is the median of its rounds, and a ratio the median of the
    rounds' ratios;
  * process start to first successful prediction: wafer with a cold compiled cache, on its first
    restart and on later restarts, and MLServer;
  * many models (tools/bench_many.py, the default self-contained guest): start, idle RSS and
    compiled cache of 1 and then MANY models.
"""

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
WAFER = TARGET / "release" / "wafer"
FLOOR = TARGET / "release" / "examples" / "loopback_floor"
DURATION = os.environ.get("BENCH_DURATION", "4s")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
MODEL = "iris"
CONNECTIONS = (1, 8, 32, 128)
# Restarts whose median is a start-up figure.
RESTARTS = 5
# Dynamic batching on both sides: at most this many rows per model call. wafer's leader waits
# for no one (batches fill while its executors are busy); MLServer's adaptive batching needs a
# wait, and gets the shortest that lets it batch.
MAX_BATCH_SIZE = 32
MLSERVER_MAX_BATCH_TIME_S = 0.0005
# Models served at once in the many-models figure.
MANY = int(os.environ.get("BENCH_MANY", "100"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes, timeout: float = 5.0) -> int:
    req = urllib.request.Request(url, data=body, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except Exception:
        return 0


def wait_for_prediction(url: str, body: bytes, proc: subprocess.Popen, limit: float = 600) -> float:
    """Seconds until `url` answers 200, polling every 5 ms."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        if post(url, body, timeout=2) == 200:
            return time.monotonic() - start
        time.sleep(0.005)
    raise RuntimeError(f"{url} did not answer within {limit} s")


def start(cmd, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wrk(url: str, body_file: Path, connections: int) -> dict:
    script = body_file.with_suffix(".lua")
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb"); wrk.body = f:read("*a"); f:close()\n'
    )
    threads = min(connections, 2)  # the machine's cores; wrk checked against the floor below
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{DURATION}", "--latency", "-s", str(script), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def latency(p: str) -> float:
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 1, "ms": 1e3, "s": 1e6}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses under load")
    return {"rps": rps, "p50_us": latency("50"), "p99_us": latency("99")}


def criterion_median_ns(bench: str) -> float:
    # Criterion names its folders after the benchmark id with "/" turned into "_".
    path = TARGET / "criterion" / "predict" / bench.replace("/", "_") / "new" / "estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def mlserver_env() -> Path:
    venv = ROOT / "tools" / ".venv-mlserver"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(ROOT / "tools" / "requirements-mlserver.txt")],
        check=True,
    )
    return venv


def mlserver_repo(venv: Path, workdir: Path, batching: bool) -> Path:
    """Trains the same iris model as tools/make_models.py and lays out an MLServer repository,
    with adaptive batching when `batching`."""
    repo = workdir / "mlserver-models" / MODEL
    repo.mkdir(parents=True, exist_ok=True)
    code = f"""
import joblib, numpy as np
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
d = load_iris(); X = d.data.astype(np.float32)
Xtr, _, ytr, _ = train_test_split(X, d.target, test_size=0.2, random_state=42, stratify=d.target)
joblib.dump(LogisticRegression(max_iter=1000).fit(Xtr, ytr), "{repo / 'model.joblib'}")
"""
    subprocess.run([str(venv / "bin" / "python"), "-c", code], check=True)
    settings = {
        "name": MODEL, "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "1"},
    }
    if batching:
        settings |= {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MLSERVER_MAX_BATCH_TIME_S}
    (repo / "model-settings.json").write_text(json.dumps(settings))
    return repo.parent


def main() -> None:
    body = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    work = Path(tempfile.mkdtemp(prefix="wafer-bench-"))
    body_file = work / "body.json"
    body_file.write_bytes(body)
    results: dict = {"http": {}, "startup": {}, "criterion": {}}

    # In-process figures (criterion ran just before, from tools/bench.sh).
    for m in ["iris", "digits", "digits_wide"]:
        results["criterion"][m] = {
            "native_ns": criterion_median_ns(f"{m}/native"),
            "guest_ns": criterion_median_ns(f"{m}/guest"),
            "nn_ns": criterion_median_ns(f"{m}/wasi-nn"),
            "refused_ns": criterion_median_ns(f"{m}/wasi-nn/refused"),
            "instance_ns": criterion_median_ns(f"{m}/instance+predict"),
        }
    results["criterion"]["digits_wide"]["no_snapshot_ns"] = criterion_median_ns(
        "digits_wide/instance+predict/no-snapshot")

    # Start to first prediction, wafer: a cold compiled cache; the first restart (which still
    # hashes the files the cold start wrote, to remember their digests); then RESTARTS more
    # restarts (the median), the last one kept serving for the load rounds.
    cache = work / "cache"
    warm = []
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    infer = lambda port: f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer"
    for label in ["cold", "first-restart"] + ["warm"] * RESTARTS:
        port = free_port()
        proc = start([str(WAFER), "serve", "models", "--addr", f"127.0.0.1:{port}", "--cache-dir", str(cache)],
                     env={"WAFER_LOG": "warn"})
        seconds = wait_for_prediction(infer(port), body, proc)
        if label == "warm":
            warm.append(seconds)
        else:
            results["startup"][f"wafer_{label}_s"] = seconds
        if label == "warm" and len(warm) == RESTARTS:
            servers["wafer"] = (proc, infer(port))
            break
        stop(proc)
        if label == "cold":
            # Past the window in which a file just written is not trusted by its metadata.
            time.sleep(2)
    results["startup"]["wafer_warm_s"] = sorted(warm)[len(warm) // 2]

    # wafer with dynamic batching: the same model in a repository whose wafer.toml turns it on.
    batched = work / "batched-models" / MODEL
    batched.mkdir(parents=True)
    shutil.copy(ROOT / "models" / MODEL / "model.onnx", batched / "model.onnx")
    (batched / "wafer.toml").write_text(f"[dynamic_batching]\nmax_batch_size = {MAX_BATCH_SIZE}\n")
    port = free_port()
    proc = start([str(WAFER), "serve", str(batched.parent), "--addr", f"127.0.0.1:{port}",
                  "--cache-dir", str(cache), "--build-dir", str(work / "batched-build")],
                 env={"WAFER_LOG": "warn"})
    wait_for_prediction(infer(port), body, proc)
    servers["wafer-batched"] = (proc, infer(port))

    # wasmtime serve on the very same component.
    component = ROOT / "target" / "wafer" / f"{MODEL}.wasm"
    port = free_port()
    proc = start([str(ROOT / "tools" / ".venv-wasmtime" / "wasmtime"), "serve", "-Scli=y", "--addr", f"127.0.0.1:{port}", str(component)])
    wait_for_prediction(infer(port), body, proc)
    servers["wasmtime"] = (proc, infer(port))

    # The loopback floor: a native hyper server answering a fixed body.
    port = free_port()
    proc = start([str(FLOOR), f"127.0.0.1:{port}"])
    wait_for_prediction(f"http://127.0.0.1:{port}/", body, proc)
    servers["floor"] = (proc, f"http://127.0.0.1:{port}/")

    # MLServer 1.7 with its scikit-learn runtime, same model, same v2 request.
    if os.environ.get("BENCH_SKIP_MLSERVER") != "1":
        venv = mlserver_env()
        for side, batching in [("mlserver", False), ("mlserver-batched", True)]:
            repo = mlserver_repo(venv, work / side, batching)
            port, grpc, metrics = free_port(), free_port(), free_port()
            def start_mlserver() -> subprocess.Popen:
                return start([str(venv / "bin" / "mlserver"), "start", str(repo)], env={
                    "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(grpc),
                    "MLSERVER_METRICS_PORT": str(metrics), "MLSERVER_HOST": "127.0.0.1",
                    "MLSERVER_PARALLEL_WORKERS": "0",
                })
            proc = start_mlserver()
            seconds = wait_for_prediction(infer(port), body, proc)
            if not batching:
                # Its start, as wafer's: the median of RESTARTS (this one included).
                starts = [seconds]
                for _ in range(RESTARTS - 1):
                    stop(proc)
                    proc = start_mlserver()
                    starts.append(wait_for_prediction(infer(port), body, proc))
                results["startup"]["mlserver_s"] = sorted(starts)[len(starts) // 2]
            servers[side] = (proc, infer(port))

    # The load: ROUNDS rounds; in each, every connection count, every side in turn, the side
    # that goes first rotating from one connection count and round to the next.
    sides = list(servers)
    turn = 0
    for r in range(ROUNDS):
        for c in CONNECTIONS:
            for side in sides[turn % len(sides):] + sides[:turn % len(sides)]:
                results["http"].setdefault(f"{side}_c{c}", []).append(wrk(servers[side][1], body_file, c))
            turn += 1
        print(f"round {r + 1} of {ROUNDS} done", flush=True)
    for proc, _ in servers.values():
        stop(proc)

    # Many models: what an added model costs, with the default guest and nothing else running.
    if os.environ.get("BENCH_SKIP_MANY") != "1":
        import bench_many
        kinds, one, many = bench_many.measure("guest", MANY)
        results["many"] = {"kinds": kinds, "one": one, "many": many}

    write_report(results)
    shutil.rmtree(work, ignore_errors=True)


# The first section of BENCHMARKS.md that this script does not write.
KEPT_FROM = "## In the browser"


def write_report(r: dict) -> None:
    crit, http, st = r["criterion"], r["http"], r["startup"]
    lines = ["# Benchmarks", "",
             "Produced by `bash tools/bench.sh` in one run; every ratio compares two sides measured "
             "side by side on the same machine. Lower times and higher throughput are better.", "",
             f"- machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"- HTTP load: wrk, {DURATION} per run, {ROUNDS} rounds (every side in turn in each), body "
             f"`{MODEL}` single-row v2 JSON request, 127.0.0.1",
             f"- batching: wafer `[dynamic_batching] max_batch_size = {MAX_BATCH_SIZE}` (join requests, no "
             f"queue delay); MLServer `max_batch_size = {MAX_BATCH_SIZE}`, "
             f"`max_batch_time = {MLSERVER_MAX_BATCH_TIME_S}` s", "",
             "## In process (criterion medians)", "",
             "| model | native tract | guest predict | guest / native | wasi-nn predict | wasi-nn / native | fresh instance + predict |",
             "|---|---|---|---|---|---|---|"]
    for m, v in crit.items():
        lines.append(f"| {m} | {v['native_ns']/1e3:.1f} µs | {v['guest_ns']/1e3:.1f} µs | "
                     f"{v['guest_ns']/v['native_ns']:.2f} | {v['nn_ns']/1e3:.1f} µs | "
                     f"{v['nn_ns']/v['native_ns']:.2f} | {v['instance_ns']/1e3:.1f} µs |")
    i = crit["iris"]
    lines += ["", f"The floor under a prediction in a fresh instance: a call the wasi-nn guest refuses "
                  f"(an unknown input) before it calls `wasi:nn` or runs anything takes "
                  f"{i['refused_ns']/1e3:.1f} µs on iris. Were a prediction no dearer to cross into than "
                  f"that, and its model as fast there as native tract, it would take "
                  f"{(i['refused_ns'] + i['native_ns'])/i['native_ns']:.2f}× native tract's "
                  f"{i['native_ns']/1e3:.1f} µs."]
    w = crit["digits_wide"]
    lines += ["", f"Snapshot: a fresh instance + predict of digits_wide (6 MB ONNX) takes "
                  f"{w['instance_ns']/1e3:.1f} µs with the parsed model in the snapshot and "
                  f"{w['no_snapshot_ns']/1e3:.1f} µs without: **{w['no_snapshot_ns']/w['instance_ns']:.1f}× faster "
                  f"with the snapshot**.", "",
              "## HTTP (wrk)", "",
              "Each side's figures are the medians of its rounds; requests/s also gives the rounds' "
              "range. Each ratio is the median of the rounds' ratios (the two sides of a round "
              "run back to back, within half a minute), with their range.", "",
              "| server | connections | requests/s | rounds' range | p50 | p99 |",
              "|---|---|---|---|---|---|"]

    def median(xs: list) -> float:
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    for name in dict.fromkeys(key.rsplit("_c", 1)[0] for key in http):
        for c in CONNECTIONS:
            runs = http[f"{name}_c{c}"]
            rps = [v["rps"] for v in runs]
            lines.append(f"| {name} | {c} | {median(rps):.0f} | {min(rps):.0f}–{max(rps):.0f} | "
                         f"{median([v['p50_us'] for v in runs]):.0f} µs | "
                         f"{median([v['p99_us'] for v in runs]):.0f} µs |")
    head = " | ".join(f"{c} conn." for c in CONNECTIONS)
    lines += ["", f"| ratio (median of rounds, and their range) | {head} |",
              "|---|" + "---|" * len(CONNECTIONS)]

    def ratio(label: str, a: str, b: str, q: str, invert: bool = False) -> None:
        if not all(f"{side}_c{c}" in http for side in (a, b) for c in CONNECTIONS):
            return
        cells = []
        for c in CONNECTIONS:
            rounds = [(y[q] / x[q] if invert else x[q] / y[q])
                      for x, y in zip(http[f"{a}_c{c}"], http[f"{b}_c{c}"])]
            cells.append(f"{median(rounds):.2f} ({min(rounds):.2f}–{max(rounds):.2f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    ratio("wafer (batched) / MLServer (adaptive batching), throughput", "wafer-batched", "mlserver-batched", "rps")
    ratio("wafer (batched) / MLServer, throughput", "wafer-batched", "mlserver", "rps")
    ratio("wafer / MLServer, throughput", "wafer", "mlserver", "rps")
    ratio("wafer (batched) / wasmtime serve, throughput", "wafer-batched", "wasmtime", "rps")
    ratio("wafer / wasmtime serve, throughput", "wafer", "wasmtime", "rps")
    ratio("wafer (batched) / wafer, throughput", "wafer-batched", "wafer", "rps")
    ratio("wafer / wasmtime serve, p50", "wafer", "wasmtime", "p50_us")
    ratio("wafer / wasmtime serve, p99", "wafer", "wasmtime", "p99_us")
    ratio("wafer / MLServer, p50", "wafer", "mlserver", "p50_us")
    ratio("wafer p50 / loopback floor p50", "wafer", "floor", "p50_us")
    ratio("wafer (batched) p50 / loopback floor p50", "wafer-batched", "floor", "p50_us")
    lines += ["", "## Process start to first successful prediction", "",
              "| server | seconds |", "|---|---|"]
    names = {"wafer_cold_s": "wafer, cold compiled cache (builds and compiles the four models)",
             "wafer_first-restart_s": "wafer, first restart (hashes what the cold start wrote)",
             "wafer_warm_s": f"wafer, warm cache (median of {RESTARTS} restarts)",
             "mlserver_s": f"MLServer (median of {RESTARTS} starts, one model)"}
    for k, v in st.items():
        lines.append(f"| {names.get(k, k)} | {v:.3f} |")
    if "mlserver_s" in st:
        for k in ["wafer_warm_s", "wafer_first-restart_s"]:
            x = st[k] / st["mlserver_s"]
            lines += ["", f"{names[k]} / MLServer: {x:.3f} (1/{1 / x:.0f})"]
    if "many" in r:
        kinds, one, many = r["many"]["kinds"], r["many"]["one"], r["many"]["many"]
        from bench_many import MB, per_added
        lines += ["", f"## Many models: 1 and then {MANY}", "",
                  f"`wafer serve` on a repository of 1 and then {MANY} models (the zoo's {kinds} in "
                  "turn under other names, the default guest), cold (empty caches) and then warm; "
                  "start is process start to `/v2/health/ready`, RSS is `VmRSS` once ready "
                  "(tools/bench_many.py; its own run, in each flavour, is under \"Many models\" "
                  "below).", "",
                  f"| measure | 1 model | {MANY} models | per added model, or {MANY} / 1 | target |",
                  "|---|---|---|---|---|",
                  f"| cold start | {one['cold_s']:.2f} s | {many['cold_s']:.2f} s | "
                  f"{many['cold_s'] / one['cold_s']:.1f}× | ≤ 3× |",
                  f"| warm start | {one['warm_s']:.2f} s | {many['warm_s']:.2f} s | "
                  f"{many['warm_s'] / one['warm_s']:.1f}× | |",
                  f"| compiled cache | {one['cache'] * MB:.1f} MB | {many['cache'] * MB:.1f} MB | "
                  f"{per_added(one, many, 'cache', MANY):.2f} MB | ≤ 2 MB |",
                  f"| idle RSS, cold start | {one['cold_rss'] * MB:.0f} MB | {many['cold_rss'] * MB:.0f} MB | "
                  f"{per_added(one, many, 'cold_rss', MANY):.2f} MB | ≤ 5 MB |",
                  f"| idle RSS, warm start | {one['warm_rss'] * MB:.0f} MB | {many['warm_rss'] * MB:.0f} MB | "
                  f"{per_added(one, many, 'warm_rss', MANY):.2f} MB | |"]
    lines += ["", "Reproduce: `bash tools/bench.sh` (`BENCH_DURATION=10s` and `BENCH_ROUNDS=9` for "
                  "longer runs).", ""]
    # The sections other tools wrote (from the browser's on) stay as they are.
    path = ROOT / "BENCHMARKS.md"
    old = path.read_text() if path.exists() else ""
    rest = old[old.index(KEPT_FROM):] if KEPT_FROM in old else ""
    path.write_text("\n".join(lines) + ("\n" + rest if rest else ""))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
