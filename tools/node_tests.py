#!/usr/bin/env python3
"""Export the ONNX backend node tests (one operator per case) as files the Rust tests read.

Run from anywhere: `python3 tools/node_tests.py OUT_DIR [--sample N] [--jobs J]`. The script
creates `tools/.venv-nodes` with the pinned versions of `tools/requirements-nodes.txt` and re-runs
itself inside it, so the same pins always give the same files.

Where the cases come from: onnx's node tests are the `expect(...)` calls of the case code that the
onnx wheel ships under `onnx/backend/test/case/node/` (`onnx.backend.test.case.node`). The
generated `onnx/backend/test/data/node/<case>/` directories (model.onnx, test_data_set_0/*.pb) are
NOT in the onnx 1.23.2 wheel, nor in its sdist, so this script runs that case code itself, as onnx's
`backend-test-tools generate-data` does: every export function seeds `np.random` with 0 first, so
the cases are deterministic. The case modules are imported in parallel (`--jobs`, default: all
CPUs); each one registers its own cases, which do not depend on the order of the imports.

It writes, for every case (or for the `--sample N` subset: N cases evenly spaced in name order):
  OUT_DIR/<case>/model.onnx  the case's model, with every graph input after the first turned into
                             an initializer of the same name holding that input's test value (so
                             only the first input is fed at run time); opset imports unchanged; the
                             IR version raised to 4 where needed (before 4, initializers had to be
                             graph inputs too). Models without inputs are written unchanged.
  OUT_DIR/<case>/case.json   {"case": name, "inputs": [tensor], "outputs": [tensor],
                              "skip": null | "reason"}
                             where a tensor is KServe v2 JSON: {"name", "datatype" (BOOL, UINT8..
                             UINT64, INT8..INT64, FP16, FP32, FP64, BYTES), "shape", "data" (flat,
                             row-major)}. Floats are the exact float64 value of the element (repr),
                             NaN is null and infinities are "inf" / "-inf"; strings are UTF-8 text.
                             "inputs" holds the first input only. A case whose first input or
                             outputs cannot be written in v2 (bfloat16, float8, int4, int2, float4,
                             sequences, optionals, ...), or whose later inputs cannot become
                             initializers, or whose outputs are random draws, has a "skip" reason
                             and empty "inputs" and "outputs".
  OUT_DIR/index.json         {"onnx": version, "rtol", "atol" (onnx's tolerances for node tests),
                              "total": cases in onnx, "sample": N | null, "written", "runnable",
                              "skipped": {reason: count}, "cases": [sorted names written]}
OUT_DIR is replaced if it holds an earlier export (an index.json); any other non-empty directory
is refused.
"""

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "tools" / ".venv-nodes"
REQUIREMENTS = ROOT / "tools" / "requirements-nodes.txt"

# Node tests whose expected outputs are random draws (Bernoulli and its expansion through
# RandomUniformLike): no runtime can reproduce them.
RANDOM_OPS = {
    "Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
    "RandomUniformLike",
}  # fmt: skip


def ensure_venv() -> None:
    """Re-exec inside tools/.venv-nodes with the pinned requirements installed."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    # pip is only asked when the pins changed since the last install, which keeps reruns fast.
    stamp = VENV / "requirements-nodes.txt"
    if not stamp.exists() or stamp.read_bytes() != REQUIREMENTS.read_bytes():
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)], check=True
        )
        shutil.copyfile(REQUIREMENTS, stamp)
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


class Skip(Exception):
    """A value that KServe v2 JSON, or an initializer, cannot hold; the message is the reason."""


def v2_datatype(elem_type: int) -> str:
    from onnx import TensorProto as T

    names = {
        T.BOOL: "BOOL", T.UINT8: "UINT8", T.UINT16: "UINT16", T.UINT32: "UINT32",
        T.UINT64: "UINT64", T.INT8: "INT8", T.INT16: "INT16", T.INT32: "INT32", T.INT64: "INT64",
        T.FLOAT16: "FP16", T.FLOAT: "FP32", T.DOUBLE: "FP64", T.STRING: "BYTES",
    }  # fmt: skip
    if elem_type not in names:
        raise Skip(f"{T.DataType.Name(elem_type).lower()} tensor")
    return names[elem_type]


def tensor_type(value_info) -> int:
    """The element type of a graph input or output, or Skip if it is not a plain tensor."""
    kind = value_info.type.WhichOneof("value")
    if kind != "tensor_type":
        raise Skip(f"{kind.removesuffix('_type')} value")
    return value_info.type.tensor_type.elem_type


def as_array(value):
    """A test value (ndarray, numpy scalar or TensorProto) as an ndarray."""
    import numpy as np
    from onnx import TensorProto, numpy_helper

    if isinstance(value, TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def float_data(arr) -> list:
    import numpy as np

    flat = arr.astype(np.float64).reshape(-1)
    data = flat.tolist()
    if not np.isfinite(flat).all():
        for i in np.flatnonzero(~np.isfinite(flat)).tolist():
            v = data[i]
            data[i] = None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return data


def v2_tensor(value_info, value) -> dict:
    """A graph input or output and its test value as a KServe v2 JSON tensor."""
    datatype = v2_datatype(tensor_type(value_info))
    arr = as_array(value)
    if datatype in ("FP16", "FP32", "FP64"):
        data = float_data(arr)
    elif datatype == "BYTES":
        data = []
        for s in arr.reshape(-1).tolist():
            if isinstance(s, bytes):
                try:
                    s = s.decode("utf-8")
                except UnicodeDecodeError:
                    raise Skip("non-UTF-8 string") from None
            data.append(s)
    else:
        data = arr.reshape(-1).tolist()
    return {"name": value_info.name, "datatype": datatype, "shape": list(arr.shape), "data": data}


def initializer(value_info, value):
    """A later graph input and its test value as an initializer of the same name and type."""
    from onnx import TensorProto, numpy_helper

    elem_type = tensor_type(value_info)
    if isinstance(value, TensorProto):
        tensor = TensorProto()
        tensor.CopyFrom(value)
        tensor.name = value_info.name
    else:
        tensor = numpy_helper.from_array(as_array(value), value_info.name)
    if tensor.data_type != elem_type:
        raise Skip("test value type differs from the graph's")
    return tensor


def node_op(node) -> str:
    """A node's operator, prefixed by its domain unless it is the default one."""
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def export_case(case) -> tuple:
    """One node test case as (name, model bytes, case.json text, skip reason, operator): the
    operator is its one node's, or None for a graph of several (an `_expanded` case)."""
    model = case.model
    graph = model.graph
    op = node_op(graph.node[0]) if len(graph.node) == 1 else None
    inputs, outputs = case.data_sets[0]
    doc = {"case": case.name, "inputs": [], "outputs": [], "skip": None}
    try:
        if len(inputs) != len(graph.input) or len(outputs) != len(graph.output):
            raise Skip("test values do not match the graph's inputs and outputs")
        if RANDOM_OPS & {n.op_type for n in graph.node}:
            raise Skip("random outputs")
        constants = [initializer(vi, v) for vi, v in zip(graph.input[1:], inputs[1:])]
        doc["inputs"] = [v2_tensor(vi, v) for vi, v in zip(graph.input[:1], inputs[:1])]
        doc["outputs"] = [v2_tensor(vi, v) for vi, v in zip(graph.output, outputs)]
    except Skip as skip:
        doc = {"case": case.name, "inputs": [], "outputs": [], "skip": str(skip)}
    else:
        if constants:
            del graph.input[1:]
            graph.initializer.extend(constants)
            model.ir_version = max(model.ir_version, 4)
    text = json.dumps(doc, separators=(",", ":"), allow_nan=False) + "\n"
    return case.name, model.SerializeToString(), text, doc["skip"], op


def case_modules() -> list:
    """The names of the modules under onnx.backend.test.case.node, in onnx's import order."""
    import pkgutil

    from onnx import ONNX_ML
    from onnx.backend.test.case import node

    names = []

    def walk(package):
        for _, name, ispkg in pkgutil.iter_modules(package.__path__):
            full = f"{package.__name__}.{name}"
            if not ONNX_ML and full.startswith("onnx.backend.test.case.node.ai_onnx_ml"):
                continue
            names.append(full)
            if ispkg:
                import importlib

                walk(importlib.import_module(full))

    walk(node)
    return names


def run_module(name: str) -> list:
    """Import one case module (which registers its cases) and export the cases it added."""
    import importlib
    import warnings

    from onnx.backend.test.case import node

    before = len(node._NodeTestCases)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cases divide by zero on purpose, etc.
        importlib.import_module(name)
    return [export_case(c) for c in node._NodeTestCases[before:]]


def prepare(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        if not (out / "index.json").exists():
            sys.exit(f"{out} is not empty and holds no earlier export (index.json): not replaced")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="output directory")
    parser.add_argument(
        "--sample", type=int, metavar="N", help="write only N cases, evenly spaced in name order"
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="processes importing case modules"
    )
    args = parser.parse_args()
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be at least 1")

    import multiprocessing

    import onnx
    import onnx.backend.test.case.base as case_base

    start = time.monotonic()
    # Every case class keeps the source of its export functions for onnx's operator docs; reading
    # it back with inspect is a fifth of the time and the cases do not need it.
    case_base.process_snippet = lambda op_name, name, export: (name, "")
    modules = case_modules()
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            results = pool.map(run_module, modules, chunksize=1)
    else:
        results = [run_module(m) for m in modules]
    cases = sorted((c for r in results for c in r), key=lambda c: c[0])
    names = [c[0] for c in cases]
    if len(set(names)) != len(names):
        duplicates = sorted(n for n, k in Counter(names).items() if k > 1)
        sys.exit("duplicate case names: " + ", ".join(duplicates))

    # An expanded case (the operator's function body) counts for the operator it expands.
    single = {c[0]: c[4] for c in cases if c[4] is not None}
    ops = {}
    for c in cases:
        base = c[0].split("_expanded")[0]
        ops[c[0]] = c[4] or single.get(base) or "(several)"

    total = len(cases)
    if args.sample is not None and args.sample < total:
        cases = [cases[i * total // args.sample] for i in range(args.sample)]

    out = args.out
    prepare(out)
    for name, model_bytes, text, _, _ in cases:
        (out / name).mkdir()
        (out / name / "model.onnx").write_bytes(model_bytes)
        (out / name / "case.json").write_text(text)
    skipped = Counter(c[3] for c in cases if c[3] is not None)
    index = {
        "onnx": onnx.__version__,
        "rtol": 1e-3,
        "atol": 1e-7,
        "total": total,
        "sample": args.sample,
        "written": len(cases),
        "runnable": len(cases) - sum(skipped.values()),
        "skipped": dict(sorted(skipped.items())),
        "cases": [c[0] for c in cases],
        "ops": {c[0]: ops[c[0]] for c in cases},
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    print(
        f"{len(cases)} of {total} node test cases in {out}: {index['runnable']} runnable, "
        f"{sum(skipped.values())} skipped; {time.monotonic() - start:.1f} s"
    )


if __name__ == "__main__":
    ensure_venv()
    main()
