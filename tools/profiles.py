"""The reference profiles of the bundled models: what `wafer drift MODEL` and the server's online
drift compare live traffic against.

For each bundled model this rebuilds the exact training rows (the same split as
tools/make_models.py and tools/credit.py), writes them to a temporary CSV, and runs
`wafer profile models/<name> --data <csv>` through cargo, which writes `models/<name>/reference/`
(`profile.json`, summaries, and `sample.csv`, the seeded sample drift tests read). Credit's
looked-up fields come from a feature store filled from `models/credit/users.csv`, as in
tools/credit.py.

It also writes what pandas says of the same rows, `tests/fixtures/profile/<name>.json`: each raw
field's (or input column's) and each output's count, missing share, mean, std, quantiles or
category shares, the outputs from onnxruntime (credit's through `wafer features transform`, the
offline pipeline). tests/all/drift.rs checks the profiles wafer wrote against them.

And `tests/fixtures/profile/traffic.json`, credit records for the online drift test: 200 from
another seed of the same generator (`unshifted`), and 200 more with age +12, income x1.3, debt
x1.5, the country mix tilted to PL and PT and a new merchant in a quarter of them (`shifted`).
"""

import csv
import json
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wafer(*args, cwd=ROOT):
    subprocess.run(["cargo", "run", "--quiet", "--release", "--manifest-path", str(ROOT / "Cargo.toml"),
                    "-p", "wafer", "--", *args], check=True, cwd=cwd)


def write_rows(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def training_rows(X, y):
    """The rows make_models.export trained on, as float32-exact decimals."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    from make_models import f32_list

    X_train, _, _, _ = train_test_split(X.astype(np.float32), y, test_size=0.2, random_state=42, stratify=y)
    return [f32_list(r) for r in X_train]


QUANTILES = [0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0]


def describe(columns):
    """pandas' summary of each column: numbers (float dtype) or categories (object dtype)."""
    import pandas as pd

    out = {}
    for name, values in columns.items():
        s = pd.Series(values)
        present = s.dropna()
        summary = {"count": len(s), "missing": float(s.isna().mean())}
        if s.dtype == object:
            summary["distinct"] = int(present.nunique())
            summary["frequencies"] = {str(k): float(v) for k, v in present.value_counts(normalize=True).items()}
        else:
            summary["mean"] = float(present.mean())
            summary["std"] = float(present.std())
            summary["quantiles"] = {f"{q:g}": float(present.quantile(q)) for q in QUANTILES}
        out[name] = summary
    return out


def outputs(onnx_path, X):
    """The model's label and probabilities columns from onnxruntime."""
    import numpy as np
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})
    columns = {"label": np.array([str(int(v)) for v in label], dtype=object)}
    for k in range(proba.shape[1]):
        columns[f"probabilities[{k}]"] = proba[:, k].astype(np.float64)
    return columns


def write_expected(name, columns):
    out = ROOT / "tests" / "fixtures" / "profile"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(describe(columns), indent=1, sort_keys=True) + "\n")


def build():
    import numpy as np
    from sklearn.datasets import load_digits, load_iris

    import credit
    from credit_data import dataset

    iris, digits = load_iris(), load_digits()
    tensors = {
        "iris": (["sepal_length", "sepal_width", "petal_length", "petal_width"], iris),
        "digits": ([f"pixel{i}" for i in range(64)], digits),
        "digits_wide": ([f"pixel{i}" for i in range(64)], digits),
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, (header, data) in tensors.items():
            path = tmp / f"{name}.csv"
            rows = training_rows(data.data, data.target)
            write_rows(path, header, rows)
            # Run beside the data, so the profile names it without the temporary folder.
            wafer("profile", str(ROOT / "models" / name), "--data", path.name, cwd=tmp)
            if name == "iris":
                # The inputs as the CSV's decimals read them; the model takes them as float32.
                X = np.array(rows, dtype=np.float64)
                columns = {f"X[{i}]": X[:, i] for i in range(X.shape[1])}
                columns.update(outputs(ROOT / "models" / name / "model.onnx", X))
                write_expected(name, columns)
        # Credit: the 900 training records, lookups from the store credit.py filled.
        rows = dataset(1000, np.random.RandomState(11))[:900]
        credit.write_csv(rows, tmp / "credit.csv")
        db = str(tmp / "features.db")
        wafer("features", "load", "--db", db, "--store", "users", "models/credit/users.csv", "--key", "user_id")
        wafer("profile", str(ROOT / "models" / "credit"), "--data", "credit.csv", "--db", db, cwd=tmp)
        # The outputs as the offline path gives them: the spec's columns, then onnxruntime.
        wafer("features", "transform", str(ROOT / "models" / "credit" / "features.toml"), "--data",
              str(tmp / "credit.csv"), "-o", str(tmp / "credit_x.csv"), "--db", db)
        _, X = credit.read_features(tmp / "credit_x.csv")

        def signup(v):
            return float(v if isinstance(v, int) else np.datetime64(v.rstrip("Z"), "s").astype(np.int64))

        num = lambda k: np.array([np.nan if r[k] is None else float(r[k]) for r in rows])
        cat = lambda k: np.array([r[k] for r in rows], dtype=object)
        columns = {"age": num("age"), "income": num("income"), "debt": num("debt"),
                   "country": cat("country"), "merchant": cat("merchant"),
                   "signup": np.array([signup(r["signup"]) for r in rows])}
        columns.update(outputs(ROOT / "models" / "credit" / "model.onnx", X))
        write_expected("credit", columns)
    traffic(dataset)


def traffic(dataset):
    import numpy as np

    import credit

    rng = np.random.RandomState(12)
    rows = [{k: r[k] for k in credit.FIELDS} for r in dataset(400, rng)]
    shifted = []
    for r in rows[200:]:
        r = dict(r, age=r["age"] + 12)
        if r["income"] is not None:
            r["income"] = float(np.round(r["income"] * 1.3, 2))
        if r["debt"] is not None:
            r["debt"] = float(np.round(r["debt"] * 1.5, 2))
        if rng.rand() < 0.6:
            r["country"] = ["PL", "PT"][rng.randint(2)]
        if rng.rand() < 0.25:
            r["merchant"] = "mcc99"
        shifted.append(r)
    out = ROOT / "tests" / "fixtures" / "profile" / "traffic.json"
    out.write_text(json.dumps({"unshifted": rows[:200], "shifted": shifted}) + "\n")
