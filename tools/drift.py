#!/usr/bin/env python3
"""Evidently's drift numbers on credit with injected shifts: the fixtures that
crates/evaluation's tests compare wafer's drift tests against.

Run with the pinned venv (tools/requirements-drift.txt):
    python3 -m venv tools/.venv-drift && tools/.venv-drift/bin/pip install -r tools/requirements-drift.txt
    tools/.venv-drift/bin/python tools/drift.py

For two reference sizes (600 rows: the p-value regime; 4,000 rows: the distance regime), the
reference is credit's raw records (tools/credit_data.py, seeded) and the current data another
draw with shifts: income's mean scaled by 1.3, the country mix tilted towards PL and PT, a new
merchant category in a quarter of the rows (and, for the large reference, avg_spend_30d scaled
by 1.25, so that half the columns drift); age, debt and orders_90d untouched.
Evidently's DataDriftPreset picks each column's method by default; the script records, per
column, the method, threshold, score and verdict, the dataset drift share and verdict, and
psi_stat_test's score. Writes tests/fixtures/drift/{small,large}.json (data and results).
"""

import json
import os
import sys
from pathlib import Path

# Evidently sums over a set of categories, whose order follows string hashing: a fixed seed
# makes the last digit of a score, and so the fixtures, the same on every run.
if os.environ.get("PYTHONHASHSEED") != "0":
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from credit_data import dataset  # noqa: E402
from evidently.legacy.calculations.stattests import psi_stat_test  # noqa: E402
from evidently.legacy.core import ColumnType  # noqa: E402
from evidently.legacy.metric_preset import DataDriftPreset  # noqa: E402
from evidently.legacy.pipeline.column_mapping import ColumnMapping  # noqa: E402
from evidently.legacy.report import Report  # noqa: E402

NUMERICAL = ["age", "income", "debt", "avg_spend_30d", "orders_90d"]
CATEGORICAL = ["country", "merchant"]
OUT = ROOT / "tests" / "fixtures" / "drift"


def frame(rows):
    return pd.DataFrame({c: [r[c] for r in rows] for c in NUMERICAL + CATEGORICAL}).astype(
        {c: "float64" for c in NUMERICAL} | {c: "object" for c in CATEGORICAL}
    )


def shifted(rows, rng, spend):
    out = []
    for r in rows:
        r = dict(r)
        if r["income"] is not None:
            r["income"] = float(np.round(r["income"] * 1.3, 2))
        if spend and r["avg_spend_30d"] is not None:
            r["avg_spend_30d"] = float(np.round(r["avg_spend_30d"] * 1.25, 2))
        if r["country"] is not None and rng.rand() < 0.35:
            r["country"] = ["PL", "PT"][rng.randint(0, 2)]
        if rng.rand() < 0.25:
            r["merchant"] = "mcc99"
        out.append(r)
    return out


def column(series):
    return [None if pd.isna(v) else (v if isinstance(v, str) else float(v)) for v in series]


def regime(name, n_reference, n_current, seed, spend):
    rng = np.random.RandomState(seed)
    reference = frame(dataset(n_reference, rng))
    current = frame(shifted(dataset(n_current, rng), rng, spend))
    report = Report(metrics=[DataDriftPreset()])
    mapping = ColumnMapping(numerical_features=NUMERICAL, categorical_features=CATEGORICAL)
    report.run(reference_data=reference, current_data=current, column_mapping=mapping)
    results = report.as_dict()["metrics"]
    dataset_drift = next(m for m in results if m["metric"] == "DatasetDriftMetric")["result"]
    table = next(m for m in results if m["metric"] == "DataDriftTable")["result"]
    columns = {}
    for c in NUMERICAL + CATEGORICAL:
        d = table["drift_by_columns"][c]
        kind = ColumnType.Numerical if c in NUMERICAL else ColumnType.Categorical
        ref = reference[c].dropna()
        cur = current[c].dropna()
        psi = psi_stat_test(ref, cur, kind, None)
        columns[c] = {
            "type": "num" if c in NUMERICAL else "cat",
            "method": d["stattest_name"],
            "threshold": d["stattest_threshold"],
            "score": d["drift_score"],
            "drifted": d["drift_detected"],
            "psi": psi.drift_score,
            "psi_drifted": bool(psi.drifted),
        }
    fixture = {
        "about": f"Evidently's DataDriftPreset on credit, {n_reference} reference rows; made by tools/drift.py",
        "reference": {c: column(reference[c]) for c in NUMERICAL + CATEGORICAL},
        "current": {c: column(current[c]) for c in NUMERICAL + CATEGORICAL},
        "columns": columns,
        "share": dataset_drift["share_of_drifted_columns"],
        "dataset_drift": dataset_drift["dataset_drift"],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(name, {c: (v["method"], round(v["score"], 6), v["drifted"]) for c, v in columns.items()},
          "share", fixture["share"])


if __name__ == "__main__":
    regime("small", 600, 500, 21, spend=False)
    regime("large", 4000, 2500, 22, spend=True)
