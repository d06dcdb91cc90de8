#!/usr/bin/env python3
"""Many models for the price of one? Serves 1 and then N models (the zoo's, repeated under other
names) with `wafer serve`, in each flavour, and prints what each added model costs:

  * start: process start to ready, cold (empty compiled, function and build caches) and then
    warm (the same caches, filled);
  * idle RSS: the server's resident memory once ready, before any request, after each start;
  * compiled cache: bytes of compiled components (and their checksums) in the cache folder.

Run after `cargo build --release -p wafer` and the guests (README, "Building"):
    python3 tools/bench_many.py [N [FLAVOUR...]]
FLAVOUR is `guest`, `wasi-nn` or `shared` (wasi-nn with `--shared-guest`); all three by default.
It prints a Markdown table for BENCHMARKS.md. Nothing is sent but readiness probes to 127.0.0.1.
"""

import os
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
ZOO = ROOT / "models" / "zoo"
# Each flavour: its backend, and its `wafer serve` arguments.
FLAVOURS = {
    "guest": ("guest", ["--backend", "guest"]),
    "wasi-nn": ("wasi-nn", ["--backend", "wasi-nn"]),
    "shared": ("wasi-nn", ["--backend", "wasi-nn", "--shared-guest"]),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def carried(models: list[Path], backend: str, work: Path) -> list[Path]:
    """The zoo models the flavour can build (wasi-nn refuses string tensors)."""
    if backend == "guest":
        return models
    kept = []
    for m in models:
        out = work / f"probe-{m.name}.wasm"
        r = subprocess.run([str(WAFER), "build", "--backend", backend, str(m), "-o", str(out)],
                           capture_output=True, env={**os.environ, "XDG_CACHE_HOME": str(work / "probe-xdg")})
        if r.returncode == 0:
            kept.append(m)
    return kept


def repository(models: list[Path], n: int, path: Path) -> Path:
    """`n` model folders: `models` in turn, each copy under its own name."""
    path.mkdir(parents=True)
    for i in range(n):
        src = models[i % len(models)]
        dst = path / f"{src.name}-{i:03}"
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("fixture*", "*.json", "*.npz"))
    return path


def serve(repo: Path, args: list[str], work: Path) -> dict:
    """Start `repo` cold (empty caches), then again warm: seconds to ready and idle RSS of each,
    and the cache's bytes."""
    cache, build, xdg = work / "cache", work / "build", work / "xdg"
    result = {}
    for label in ["cold", "warm"]:
        if label == "warm":
            time.sleep(2.1)  # past the window in which files just written are hashed again
        port = free_port()
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(WAFER), "serve", str(repo), "--addr", f"127.0.0.1:{port}", *args,
             "--cache-dir", str(cache), "--build-dir", str(build)],
            env={**os.environ, "XDG_CACHE_HOME": str(xdg), "WAFER_LOG": "warn"},
            stdout=subprocess.DEVNULL)
        try:
            while not ready(f"http://127.0.0.1:{port}/v2/health/ready"):
                if proc.poll() is not None:
                    raise RuntimeError(f"wafer serve exited with {proc.returncode}")
                if time.monotonic() - started > 1800:
                    raise RuntimeError("not ready within 30 minutes")
                time.sleep(0.01)
            result[f"{label}_s"] = time.monotonic() - started
            time.sleep(1)  # idle: let start-up work settle
            result[f"{label}_rss"] = rss_bytes(proc.pid)
        finally:
            proc.terminate()
            proc.wait()
    result["cache"] = sum(f.stat().st_size for f in cache.iterdir()
                          if f.suffix in (".cwasm", ".sha256", ".code")) if cache.is_dir() else 0
    return result


def measure(flavour: str, n: int) -> tuple[int, dict, dict]:
    """Serves 1 and then `n` models in `flavour`: the zoo models it carries, and what
    `serve` measured of each repository."""
    backend, args = FLAVOURS[flavour]
    zoo = sorted(p for p in ZOO.iterdir() if (p / "model.onnx").is_file())
    work = Path(tempfile.mkdtemp(prefix=f"wafer-many-{flavour}-"))
    try:
        models = carried(zoo, backend, work)
        one = serve(repository(models, 1, work / "one"), args, work / "run-one")
        many = serve(repository(models, n, work / "many"), args, work / "run-many")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return len(models), one, many


MB = 1 / (1 << 20)


def per_added(one: dict, many: dict, key: str, n: int) -> float:
    """What each of the `n - 1` models added to the one costs of `key` (bytes), in MB."""
    return (many[key] - one[key]) / (n - 1) * MB


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rows = []
    for flavour in sys.argv[2:] or list(FLAVOURS):
        rows.append((flavour, *measure(flavour, n)))
    print(f"| flavour | zoo models | start, 1 model | start, {n} | {n} / 1 (cold: target ≤ 3) "
          f"| idle RSS, 1 | idle RSS, {n} | RSS per added model (≤ 5 MB) |")
    print("|---|---|---|---|---|---|---|---|")
    for backend, kinds, one, many in rows:
        for label in ["cold", "warm"]:
            s1, sn = one[f"{label}_s"], many[f"{label}_s"]
            r1, rn = one[f"{label}_rss"], many[f"{label}_rss"]
            print(f"| {backend}, {label} | {kinds} | {s1:.2f} s | {sn:.2f} s | {sn / s1:.1f} "
                  f"| {r1 * MB:.0f} MB | {rn * MB:.0f} MB | "
                  f"{per_added(one, many, f'{label}_rss', n):.1f} MB |")
    print()
    for backend, _, one, many in rows:
        print(f"- {backend}: compiled cache {many['cache'] * MB:.0f} MB for {n} models, "
              f"{per_added(one, many, 'cache', n):.1f} MB per added model (target ≤ 2 MB)")


if __name__ == "__main__":
    main()
