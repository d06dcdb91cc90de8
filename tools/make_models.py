#!/usr/bin/env python3
"""Train the bundled example models and write their ONNX exports and test fixtures.

Run from anywhere: `python3 tools/make_models.py [examples] [zoo] [ops] [features] [credit] [profiles] [broken]
[compare] [torch]` (all but torch by default). The script creates `tools/.venv` with the pinned
versions of `tools/requirements.txt` and re-runs itself inside it, so the fixtures are reproducible.
`torch` runs in its own venv, `tools/.venv-torch` (pinned in `tools/requirements-torch.txt`; about
5.7 GB, as torch's PyPI wheel brings the CUDA libraries), and writes the PyTorch models of the zoo
(see tools/torch_models.py).

`zoo` writes the model zoo under `models/zoo/` (see tools/zoo.py) and `ops` the single-operator
fixtures under `crates/scoring/fixtures/ops/` (see tools/ops.py); `features` what scikit-learn's
preprocessing gives, for crates/features (see tools/features.py); `credit` the model served from raw
records through features.toml (see tools/credit.py; it runs `wafer features` through cargo);
`profiles` the reference profiles of the bundled models, under `models/<name>/reference/`
(see tools/profiles.py; it runs `wafer profile` through cargo);
`compare` iris against a retrained iris for `wafer compare` (see tools/compare.py); `broken` a
model that must fail to load (see tools/broken.py). For every example model it
writes, under `models/<name>/`:
  model.onnx        the skl2onnx export (zipmap=False: a label tensor and a probabilities tensor)
  test_inputs.json  the held-back rows, as float32-exact decimals: {"input": name, "shape": [N, F], "data": [[...]]}
  expected.json     labels and probabilities from scikit-learn and from onnxruntime on those rows
  README.md         source, versions, sha256 of model.onnx, how to regenerate
The Rust tests read these files; they never need Python.
"""

import hashlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "tools" / ".venv"
REQUIREMENTS = ROOT / "tools" / "requirements.txt"
VENV_TORCH = ROOT / "tools" / ".venv-torch"
REQUIREMENTS_TORCH = ROOT / "tools" / "requirements-torch.txt"
GROUPS = ["examples", "zoo", "ops", "features", "credit", "profiles", "broken", "compare", "torch"]


def ensure_venv(venv: Path = VENV, requirements: Path = REQUIREMENTS) -> None:
    """Re-exec inside `venv` with the pinned requirements installed."""
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", str(requirements)], check=True
    )
    os.execv(str(python), [str(python), __file__, *sys.argv[1:]])


def f32_list(row):
    """Float32 values as the shortest decimals that round-trip to the same float32."""
    import numpy as np

    return [float(np.format_float_positional(np.float32(v), unique=True, trim="0")) for v in row]


def export(name, estimator, X, y, description, source):
    import numpy as np
    import onnxruntime as ort
    import sklearn
    import skl2onnx
    import onnx
    from skl2onnx import to_onnx
    from sklearn.model_selection import train_test_split

    X = X.astype(np.float32)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=42, stratify=y)
    estimator.fit(X_train, y_train)

    onx = to_onnx(
        estimator,
        X_train[:1],
        options={id(estimator): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    out = ROOT / "models" / name
    out.mkdir(parents=True, exist_ok=True)
    model_bytes = onx.SerializeToString()
    (out / "model.onnx").write_bytes(model_bytes)

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    input_name = sess.get_inputs()[0].name
    ort_label, ort_proba = sess.run(None, {input_name: X_test})

    inputs = {"input": input_name, "shape": list(X_test.shape), "data": [f32_list(r) for r in X_test]}
    expected = {
        "outputs": [o.name for o in sess.get_outputs()],
        "sklearn": {
            "label": [int(v) for v in estimator.predict(X_test)],
            "probabilities": [[float(p) for p in r] for r in estimator.predict_proba(X_test)],
        },
        "onnxruntime": {
            "label": [int(v) for v in ort_label],
            "probabilities": [[float(p) for p in r] for r in ort_proba],
        },
    }
    (out / "test_inputs.json").write_text(json.dumps(inputs, separators=(",", ":")) + "\n")
    (out / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")

    sha = hashlib.sha256(model_bytes).hexdigest()
    (out / "README.md").write_text(
        f"""# {name}

{description}

- source: {source}
- input `{input_name}`: float32 `[N, {X.shape[1]}]`; outputs `label` (int64 `[N]`) and `probabilities` (float32 `[N, {len(estimator.classes_)}]`)
- test set: {len(X_test)} held-back rows (`train_test_split(test_size=0.2, random_state=42, stratify=y)`)
- model.onnx sha256: `{sha}`
- exported with skl2onnx `zipmap=False`, opsets ai.onnx 17 and ai.onnx.ml 3
- versions: scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}

Regenerate with `python3 tools/make_models.py` (pinned versions in `tools/requirements.txt`).
"""
    )
    print(f"{name}: {len(X_test)} test rows, sha256 {sha[:16]}")


def examples() -> None:
    """The example models `wafer serve` serves by default."""
    from sklearn.datasets import load_digits, load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    iris = load_iris()
    export(
        "iris",
        LogisticRegression(max_iter=1000),
        iris.data,
        iris.target,
        "LogisticRegression on the iris flowers: 4 float features, 3 classes.",
        "sklearn.datasets.load_iris (ships with scikit-learn)",
    )
    digits = load_digits()
    export(
        "digits",
        MLPClassifier(hidden_layer_sizes=(64,), max_iter=400, random_state=0),
        digits.data,
        digits.target,
        "MLPClassifier on 8x8 handwritten digits: 64 float features, 10 classes.",
        "sklearn.datasets.load_digits (ships with scikit-learn)",
    )
    export(
        "digits_wide",
        MLPClassifier(hidden_layer_sizes=(1200, 1200), max_iter=40, random_state=0),
        digits.data,
        digits.target,
        "A wide MLPClassifier (two hidden layers of 1200) on 8x8 digits: a model of about 6 MB, "
        "large enough that parsing it at every cold start would show (see BENCHMARKS.md).",
        "sklearn.datasets.load_digits (ships with scikit-learn)",
    )


def main() -> None:
    groups = sys.argv[1:] or [g for g in GROUPS if g != "torch"]
    for group in groups:
        if group not in GROUPS:
            sys.exit(f"unknown group {group!r}: expected {', '.join(GROUPS[:-1])} or {GROUPS[-1]}")
    # torch needs tools/.venv-torch, the rest tools/.venv: each run of groups goes to its own venv.
    runs = [list(run) for _, run in itertools.groupby(groups, key=lambda g: g == "torch")]
    if len(runs) > 1:
        for run in runs:
            subprocess.run([sys.executable, __file__, *run], check=True)
        return
    if groups[0] == "torch":
        ensure_venv(VENV_TORCH, REQUIREMENTS_TORCH)
    else:
        ensure_venv()
    sys.path.insert(0, str(ROOT / "tools"))
    for group in groups:
        if group == "examples":
            examples()
        elif group == "zoo":
            import zoo

            zoo.build()
        elif group == "ops":
            import ops

            ops.build()
        elif group == "features":
            import features

            features.build()
        elif group == "credit":
            import credit

            credit.build()
        elif group == "profiles":
            import profiles

            profiles.build()
        elif group == "broken":
            import broken

            broken.build()
        elif group == "compare":
            import compare

            compare.build()
        elif group == "torch":
            import torch_models

            torch_models.build()


if __name__ == "__main__":
    main()
