#!/usr/bin/env python3
"""Batch and streaming benchmarks, each a ratio measured in one run on this machine.

  tools/.venv-batch/bin/python tools/bench_batch.py [--rows 1000000] [--big-gb 1.0]

1. `wafer batch` against pandas + onnxruntime (read the CSV, run the session on the frame, write
   the predictions as CSV), on 1,000,000 rows of iris (a plain numeric model) and of credit's raw
   records, where the Python side does credit's feature transform itself (its features.toml,
   written in pandas, lookups joined from users.csv).
2. Peak RSS of `wafer batch` on a CSV file of at least 1 GB.
3. Streaming: lines per second through `POST .../infer` with application/x-ndjson on
   `wafer serve`, against one `/infer` request per line on a keep-alive connection; and the
   latency from sending a line to reading its answer.

It needs `cargo build --release -p wafer` and the guest (`tools/bench_batch.sh` builds both).
Everything goes to 127.0.0.1; files go under target/bench-batch/.
"""

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import tomllib
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
WAFER = ROOT / "target/release/wafer"
WORK = ROOT / "target/bench-batch"


def wafer_env():
    env = dict(os.environ)
    env.setdefault("WAFER_GUEST", str(ROOT / "target/wasm32-wasip2/guest/wafer_guest.wasm"))
    env.setdefault("WAFER_LOG", "warn")
    return env


def run_wafer_batch(model, src, dst, *extra):
    """Runs wafer batch; returns (seconds, peak RSS in bytes of the child)."""
    if dst.exists():
        dst.unlink()
    # GNU time measures the peak RSS of wafer alone (a fork of this Python would count the
    # parent's pages until the exec).
    cmd = ["/usr/bin/time", "-f", "%M", str(WAFER), "batch", model, "--quiet", "-i", str(src),
           "-o", str(dst), *extra]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=wafer_env(), stderr=subprocess.PIPE, text=True)
    took = time.perf_counter() - start
    lines = proc.stderr.strip().splitlines()
    if not dst.exists() or not lines:
        sys.exit(f"wafer batch failed: {proc.stderr}")
    return took, int(lines[-1]) * 1024, "\n".join(lines[:-1]).strip()


# --- data -----------------------------------------------------------------------------------

def iris_csv(path, rows):
    if path.exists():
        return
    rng = np.random.default_rng(7)
    test = np.array(json.loads((ROOT / "models/iris/test_inputs.json").read_text())["data"])
    picks = test[rng.integers(0, len(test), rows)] + rng.normal(0, 0.05, (rows, 4))
    pd.DataFrame(picks.round(2), columns=["f0", "f1", "f2", "f3"]).to_csv(path, index=False)


def credit_csv(path, rows):
    if path.exists():
        return
    records = json.loads((ROOT / "models/credit/test_records.json").read_text())
    frame = pd.DataFrame(records)
    frame = frame.iloc[np.arange(rows) % len(frame)].reset_index(drop=True)
    frame.insert(0, "txn", [f"t{i}" for i in range(rows)])
    frame.to_csv(path, index=False)


# --- the Python side ------------------------------------------------------------------------

def murmur3_32(data: bytes, seed=0):
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    n = len(data) - len(data) % 4
    for i in range(0, n, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
        h = ((h << 13) | (h >> 19)) & 0xFFFFFFFF
        h = (h * 5 + 0xE6546B64) & 0xFFFFFFFF
    k = 0
    tail = data[n:]
    for i, b in enumerate(tail):
        k |= b << (8 * i)
    if tail:
        k = (k * c1) & 0xFFFFFFFF
        k = ((k << 15) | (k >> 17)) & 0xFFFFFFFF
        k = (k * c2) & 0xFFFFFFFF
        h ^= k
    h ^= len(data)
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def credit_features(df, spec, users):
    """credit's features.toml in pandas: what a team without wafer writes by hand."""
    fields = {f["name"]: f for f in spec["field"]}
    df = df.merge(users, on="user_id", how="left")
    for name, f in fields.items():
        if "default" in f and name in df:
            df[name] = df[name].fillna(f["default"])
    signup = df["signup"].astype(str)
    numeric = pd.to_numeric(signup, errors="coerce")
    parsed = pd.to_datetime(signup.where(numeric.isna()), utc=True, errors="coerce", format="ISO8601")
    epoch = numeric.fillna(parsed.astype("int64") / 1e9)
    stamps = pd.to_datetime(epoch, unit="s", utc=True)
    cols = []
    for feat in spec["feature"]:
        t = feat["transform"]
        x = df[feat["field"]] if "field" in feat else None
        if t == "standardize":
            cols.append(((x - feat["mean"]) / feat["std"]).to_numpy()[:, None])
        elif t == "log1p":
            cols.append(np.log1p(x.astype(float)).to_numpy()[:, None])
        elif t == "missing_indicator":
            raw = df["income_raw"] if feat["field"] == "income" else x
            cols.append(raw.isna().astype(float).to_numpy()[:, None])
        elif t == "ratio":
            a, b = feat["fields"]
            cols.append((df[a] / df[b]).to_numpy()[:, None])
        elif t == "bucketize":
            bucket = np.searchsorted(feat["boundaries"], x.to_numpy(), side="right")
            cols.append(np.eye(len(feat["boundaries"]) + 1)[bucket])
        elif t == "one_hot":
            vocab = feat["vocabulary"]
            index = x.map({v: i for i, v in enumerate(vocab)}).fillna(len(vocab)).astype(int)
            cols.append(np.eye(len(vocab) + 1)[index])
        elif t == "hash":
            n = feat["n_features"]
            table = {}
            for token in x.dropna().unique():
                h = murmur3_32(str(token).encode())
                table[token] = (abs(h) % n, -1.0 if h < 0 else 1.0)
            out = np.zeros((len(df), n))
            placed = x.map(table)
            for i, cell in enumerate(placed):
                if isinstance(cell, tuple):
                    out[i, cell[0]] += cell[1]
            cols.append(out)
        elif t == "timestamp":
            if feat["part"] == "weekday":
                value, period = stamps.dt.weekday.astype(float), 7.0
            else:
                value, period = stamps.dt.month.astype(float), 12.0
            if feat.get("cyclic"):
                angle = 2 * math.pi * value / period
                cols.append(np.column_stack([np.sin(angle), np.cos(angle)]))
            else:
                cols.append(value.to_numpy()[:, None])
        else:
            sys.exit(f"transform {t} is not written in pandas here")
    return np.hstack(cols).astype(np.float32)


def python_numeric(model, src, dst):
    start = time.perf_counter()
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    df = pd.read_csv(src)
    label, proba = sess.run(None, {sess.get_inputs()[0].name: df.to_numpy(np.float32)})
    out = pd.DataFrame(proba, columns=[f"probabilities_{i}" for i in range(proba.shape[1])])
    out.insert(0, "label", label)
    out.insert(0, "row", np.arange(len(df)))
    out.to_csv(dst, index=False)
    return time.perf_counter() - start


def python_credit(src, dst):
    start = time.perf_counter()
    spec = tomllib.loads((ROOT / "models/credit/features.toml").read_text())
    users = pd.read_csv(ROOT / "models/credit/users.csv")
    sess = ort.InferenceSession(str(ROOT / "models/credit/model.onnx"),
                                providers=["CPUExecutionProvider"])
    df = pd.read_csv(src, dtype={"txn": str, "user_id": str, "signup": str})
    df["income_raw"] = df["income"]
    x = credit_features(df, spec, users)
    label, proba = sess.run(None, {sess.get_inputs()[0].name: x})
    out = pd.DataFrame(proba, columns=[f"probabilities_{i}" for i in range(proba.shape[1])])
    out.insert(0, "label", label)
    out.insert(0, "txn", df["txn"])
    out.to_csv(dst, index=False)
    return time.perf_counter() - start, label


# --- streaming ------------------------------------------------------------------------------

def start_server():
    db = WORK / "features.db"
    if not db.exists():
        subprocess.run([str(WAFER), "features", "load", "--store", "users", "--key", "user_id",
                        "--db", str(db), "models/credit/users.csv"], cwd=ROOT, env=wafer_env(),
                       check=True, capture_output=True)
    proc = subprocess.Popen([str(WAFER), "serve", "models", "--addr", "127.0.0.1:0", "--db",
                             str(db)], cwd=ROOT, env=wafer_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if "listening on http://" in line:
            addr = line.split("http://")[-1].split()[0].strip().rstrip("/")
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            host, port = addr.rsplit(":", 1)
            return proc, (host, int(port))
    sys.exit("wafer serve did not start")


class ChunkedStream:
    def __init__(self, addr, path):
        self.sock = socket.create_connection(addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-ndjson"
                          f"\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        self.head = False
        self.pending = b""

    def send(self, data: bytes):
        self.sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self):
        self.sock.sendall(b"0\r\n\r\n")

    def answer(self):
        if not self.head:
            while self.file.readline() not in (b"\r\n", b""):
                pass
            self.head = True
        while b"\n" not in self.pending:
            size = int(self.file.readline().strip(), 16)
            data = self.file.read(size + 2)
            if size == 0:
                return None
            self.pending += data[:size]
        line, self.pending = self.pending.split(b"\n", 1)
        return line


def streaming(addr, lines):
    row = b"[5.1, 3.5, 1.4, 0.2]\n"
    # Latency: one line, then its answer, then the next.
    s = ChunkedStream(addr, "/v2/models/iris/infer")
    waits = []
    for _ in range(2000):
        t = time.perf_counter()
        s.send(row)
        s.answer()
        waits.append(time.perf_counter() - t)
    s.finish()
    waits.sort()
    # Throughput: every line sent from a thread while answers are read.
    s = ChunkedStream(addr, "/v2/models/iris/infer")
    t = time.perf_counter()

    def send_all():
        block = row * 1000
        for _ in range(lines // 1000):
            s.send(block)
        s.finish()

    sender = threading.Thread(target=send_all)
    sender.start()
    got = 0
    while s.answer() is not None:
        got += 1
    streamed = got / (time.perf_counter() - t)
    sender.join()
    # The baseline: one /infer request per line on a keep-alive connection.
    body = json.dumps({"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2]}]}).encode()
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    f = sock.makefile("rb")
    n = 5000
    t = time.perf_counter()
    for _ in range(n):
        sock.sendall(b"POST /v2/models/iris/infer HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        length = 0
        while (h := f.readline()) != b"\r\n":
            if h.lower().startswith(b"content-length:"):
                length = int(h.split(b":")[1])
        f.read(length)
    per_request = n / (time.perf_counter() - t)
    return streamed, per_request, waits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--big-gb", type=float, default=1.0)
    ap.add_argument("--stream-lines", type=int, default=200_000)
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count()
    print(f"# batch and streaming, {args.rows} rows, {cores} cores\n")

    iris = WORK / f"iris-{args.rows}.csv"
    credit = WORK / f"credit-{args.rows}.csv"
    iris_csv(iris, args.rows)
    credit_csv(credit, args.rows)
    db = WORK / "features.db"
    subprocess.run([str(WAFER), "features", "load", "--store", "users", "--key", "user_id",
                    "--db", str(db), "models/credit/users.csv"], cwd=ROOT, env=wafer_env(),
                   check=True, capture_output=True)
    # Build and compile once, outside the timings.
    run_wafer_batch("models/iris", iris, WORK / "warm.csv", "--chunk", "64")
    run_wafer_batch("models/credit", credit, WORK / "warm2.csv", "--db", str(db),
                    "--id-column", "txn")

    rows = []
    w, rss, _ = run_wafer_batch("models/iris", iris, WORK / "iris-wafer.csv")
    p = python_numeric(ROOT / "models/iris/model.onnx", iris, WORK / "iris-pandas.csv")
    rows.append(("iris (numeric), CSV → CSV", w, p, rss))
    w, rss, _ = run_wafer_batch("models/credit", credit, WORK / "credit-wafer.csv", "--db", str(db),
                                "--id-column", "txn")
    p, labels = python_credit(credit, WORK / "credit-pandas.csv")
    ours = pd.read_csv(WORK / "credit-wafer.csv")["label"].to_numpy()
    agree = (ours == labels).mean()
    rows.append(("credit (raw records, lookups), CSV → CSV", w, p, rss))
    print("| job | wafer batch rows/s | pandas + onnxruntime rows/s | ratio | wafer peak RSS |")
    print("|---|---|---|---|---|")
    for name, w, p, rss in rows:
        print(f"| {name} | {args.rows / w:,.0f} | {args.rows / p:,.0f} | {p / w:.2f}× | "
              f"{rss / 2**20:.0f} MiB |")
    print(f"\ncredit: wafer's labels agree with the pandas transform's on {agree:.4%} of rows")

    big = WORK / "big.csv"
    if not big.exists() or big.stat().st_size < args.big_gb * 2**30:
        block = iris.read_bytes().split(b"\n", 1)[1]
        with big.open("wb") as f:
            f.write(b"f0,f1,f2,f3\n")
            while f.tell() < args.big_gb * 2**30:
                f.write(block)
    w, rss, summary = run_wafer_batch("models/iris", big, WORK / "big-out.csv")
    print(f"\npeak RSS of wafer batch on {big.stat().st_size / 2**30:.2f} GiB of CSV: "
          f"{rss / 2**20:.0f} MiB ({summary})")
    (WORK / "big-out.csv").unlink()

    server, addr = start_server()
    try:
        streamed, per_request, waits = streaming(addr, args.stream_lines)
    finally:
        server.kill()
    print(f"\nstreaming (iris, one row per line): {streamed:,.0f} lines/s against "
          f"{per_request:,.0f} requests/s one /infer per line → {streamed / per_request:.2f}×; "
          f"line-to-answer latency p50 {waits[len(waits) // 2] * 1e6:.0f} µs, "
          f"p99 {waits[len(waits) * 99 // 100] * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
