"""Fixtures for `wafer compare`: iris against a retrained iris with another regularization
strength, with onnxruntime's answers for both and scikit-learn's metrics.

Imported by tools/make_models.py inside the pinned venv (`python3 tools/make_models.py
compare`). It writes, under tests/fixtures/compare/:
  iris_c/model.onnx   LogisticRegression(C=0.01) on the same split as models/iris (C=1.0)
  iris.csv            the 30 held-back iris rows, with their true class in `species`
  iris.json           onnxruntime's labels and probabilities for models/iris (A) and iris_c
                      (B), the rows where they disagree, and accuracy, log-loss and one-vs-rest
                      macro ROC AUC from scikit-learn for each
"""

import csv
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
from sklearn.model_selection import train_test_split

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "compare"
COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def build():
    iris = load_iris()
    X = iris.data.astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(
        X, iris.target, test_size=0.2, random_state=42, stratify=iris.target
    )
    retrained = LogisticRegression(C=0.01, max_iter=1000).fit(X_train, y_train)
    onx = to_onnx(
        retrained,
        X_train[:1],
        options={id(retrained): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    (OUT / "iris_c").mkdir(parents=True, exist_ok=True)
    (OUT / "iris_c" / "model.onnx").write_bytes(onx.SerializeToString())

    def run(path):
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        label, proba = sess.run(None, {sess.get_inputs()[0].name: X_test})
        return label, proba

    a_label, a_proba = run(ROOT / "models" / "iris" / "model.onnx")
    b_label, b_proba = run(OUT / "iris_c" / "model.onnx")

    with open(OUT / "iris.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS + ["species"])
        for row, y in zip(X_test, y_test):
            w.writerow([repr(float(v)) for v in row] + [int(y)])

    def metrics(label, proba):
        return {
            "accuracy": accuracy_score(y_test, label),
            "log_loss": log_loss(y_test, proba.astype(np.float64), labels=[0, 1, 2]),
            "roc_auc": roc_auc_score(y_test, proba.astype(np.float64), multi_class="ovr"),
        }

    fixture = {
        "about": "models/iris (A, C=1.0) against tests/fixtures/compare/iris_c (B, C=0.01) on "
        "iris's 30 held-back rows; made by tools/compare.py",
        "a": {"label": a_label.tolist(), "probabilities": a_proba.tolist(), **metrics(a_label, a_proba)},
        "b": {"label": b_label.tolist(), "probabilities": b_proba.tolist(), **metrics(b_label, b_proba)},
        "disagree": [i for i, (a, b) in enumerate(zip(a_label, b_label)) if a != b],
        "max_abs_diff": float(np.abs(a_proba - b_proba).max()),
        "mean_abs_diff": float(np.abs(a_proba.astype(np.float64) - b_proba).mean()),
    }
    (OUT / "iris.json").write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"compare: {len(fixture['disagree'])} of {len(y_test)} rows disagree")
