"""models/credit: a synthetic credit-default dataset served from raw records through features.toml.

Imported by tools/make_models.py inside the pinned venv (`python3 tools/make_models.py credit`).
The features are made by wafer itself, not re-implemented here: the script runs
`wafer features load`, `wafer features fit` and `wafer features transform` (built with cargo) on
the raw CSV, with the looked-up fields read from the same SQLite store the server reads, trains
scikit-learn on exactly the columns wafer wrote, and exports the model to ONNX. It writes, under
`models/credit/`:
  features.toml        the fitted spec
  users.csv            the online feature store's rows: per-user spend and orders, looked up by
                       user_id (`wafer features load --store users models/credit/users.csv
                       --key user_id`); a few users are absent and take the defaults
  model.onnx           GradientBoostingClassifier on the spec's columns (input "X", FP32)
  test_records.json    the held-back raw records (JSON objects, missing values as null)
  expected.json        labels and probabilities from scikit-learn and onnxruntime on the offline
                       path: `wafer features transform` of those records, then the model
  README.md            how it is made
"""

import csv
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier

from credit_data import dataset

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "models" / "credit"

SPEC = """# The credit model's feature pipeline. `wafer features fit` filled in the statistics.
[[field]]
name = "age"
type = "float"
required = true

[[field]]
name = "income"
type = "float"
impute = "median"

[[field]]
name = "debt"
type = "float"
default = 0.0

[[field]]
name = "country"
type = "string"
default = "unknown"

[[field]]
name = "merchant"
type = "string"

[[field]]
name = "signup"
type = "timestamp"
required = true

[[field]]
name = "user_id"
type = "string"

# Looked up online by user_id in the "users" store; users absent from it take the default.
[[field]]
name = "avg_spend_30d"
type = "float"
default = 0.0
lookup = { store = "users", key = "user_id" }

[[field]]
name = "orders_90d"
type = "int"
default = 0
lookup = { store = "users", key = "user_id" }

[[feature]]
name = "age_z"
field = "age"
transform = "standardize"

[[feature]]
name = "income_log"
field = "income"
transform = "log1p"

[[feature]]
name = "income_missing"
field = "income"
transform = "missing_indicator"

[[feature]]
name = "debt_to_income"
fields = ["debt", "income"]
transform = "ratio"

[[feature]]
name = "age_band"
field = "age"
transform = "bucketize"
bins = 4
encode = "one_hot"

[[feature]]
name = "country"
field = "country"
transform = "one_hot"
unknown = "bucket"
min_frequency = 20

[[feature]]
name = "merchant"
field = "merchant"
transform = "hash"
n_features = 8

[[feature]]
name = "signup_weekday"
field = "signup"
transform = "timestamp"
part = "weekday"
cyclic = true

[[feature]]
name = "signup_month"
field = "signup"
transform = "timestamp"
part = "month"

[[feature]]
name = "avg_spend_log"
field = "avg_spend_30d"
transform = "log1p"

[[feature]]
name = "orders_90d"
field = "orders_90d"
transform = "standardize"

[[output]]
name = "X"
datatype = "FP32"
"""

FIELDS = ["user_id", "age", "income", "debt", "country", "merchant", "signup"]
USER_FIELDS = ["user_id", "avg_spend_30d", "orders_90d"]


def write_csv(rows, path, fields=FIELDS):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        for r in rows:
            w.writerow(["" if r[k] is None else r[k] for k in fields])


def wafer(*args):
    subprocess.run(["cargo", "run", "--quiet", "--release", "-p", "wafer", "--", *args], check=True, cwd=ROOT)


def read_features(path):
    with open(path) as f:
        rows = list(csv.reader(f))
    return rows[0], np.array([[float(c) if c else np.nan for c in r] for r in rows[1:]], dtype=np.float32)


def build():
    rng = np.random.RandomState(11)
    rows = dataset(1000, rng)
    train, test = rows[:900], rows[900:950]
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = OUT / "features.toml"
        spec.write_text(SPEC)
        write_csv(train, tmp / "train.csv")
        write_csv(test, tmp / "test.csv")
        write_csv([r for r in rows if r["avg_spend_30d"] is not None], OUT / "users.csv", USER_FIELDS)
        db = str(tmp / "features.db")
        wafer("features", "load", "--db", db, "--store", "users", str(OUT / "users.csv"), "--key", "user_id")
        wafer("features", "fit", str(spec), "--data", str(tmp / "train.csv"), "--db", db)
        for part in ("train", "test"):
            wafer("features", "transform", str(spec), "--data", str(tmp / f"{part}.csv"),
                  "-o", str(tmp / f"{part}_x.csv"), "--db", db)
        columns, X_train = read_features(tmp / "train_x.csv")
        _, X_test = read_features(tmp / "test_x.csv")
    y_train = np.array([r["default"] for r in train])
    model = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=0).fit(X_train, y_train)
    onx = to_onnx(model, X_train[:1], options={id(model): {"zipmap": False}},
                  target_opset={"": 17, "ai.onnx.ml": 3})
    opsets = sorted(onx.opset_import, key=lambda o: o.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    model_bytes = onx.SerializeToString()
    (OUT / "model.onnx").write_bytes(model_bytes)
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"X": X_test})
    records = [{k: r[k] for k in FIELDS} for r in test]
    (OUT / "test_records.json").write_text(json.dumps(records, indent=0) + "\n")
    expected = {
        "columns": columns,
        "sklearn": {"label": [int(v) for v in model.predict(X_test)],
                    "probabilities": [[float(p) for p in r] for r in model.predict_proba(X_test)]},
        "onnxruntime": {"label": [int(v) for v in label],
                        "probabilities": [[float(p) for p in r] for r in proba]},
    }
    (OUT / "expected.json").write_text(json.dumps(expected, separators=(",", ":")) + "\n")
    sha = hashlib.sha256(model_bytes).hexdigest()
    (OUT / "README.md").write_text(f"""# credit

A synthetic credit-default model served from raw records: age, income (15% missing), debt,
country (a rare one, sometimes absent), merchant category, signup time (RFC 3339 or epoch seconds)
and a user id, by which two per-user fields, `avg_spend_30d` and `orders_90d`, are looked up
online in the `users` store (`users.csv`; 6% of users are absent and take the defaults). Fill the
store with `wafer features load --store users models/credit/users.csv --key user_id`.
`features.toml` turns a record into {len(columns)} model columns:
{", ".join(f"`{c}`" for c in columns)}.

Made by `python3 tools/make_models.py credit` (tools/credit.py): 900 training and 50 test records
from a seeded generator; `wafer features load` filled a feature store from `users.csv`,
`wafer features fit --db` learned the spec's statistics, `wafer features transform --db` wrote the
training columns (the looked-up fields read from that store, as the server reads them), and a GradientBoostingClassifier(n_estimators=60,
max_depth=3) was trained on exactly those columns. `expected.json` holds scikit-learn's and
onnxruntime's answers on the offline path (`wafer features transform` of `test_records.json`, then
the model).

- model.onnx sha256 `{sha}`; input `X` FP32 [N, {len(columns)}]; outputs `label`, `probabilities`
- versions: scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}
""")
    print(f"credit: {len(columns)} columns, test accuracy {np.mean(label == [r['default'] for r in test]):.2f}")
