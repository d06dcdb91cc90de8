"""The reference profiles of the bundled models: what `wafer drift MODEL` and the server's online
drift compare live traffic against.

For each bundled model this rebuilds the exact training rows (the same split as
tools/make_models.py and tools/credit.py), writes them to a temporary CSV, and runs
`wafer profile models/<name> --data <csv>` through cargo, which writes `models/<name>/reference/`
(`profile.json`, summaries, and `sample.csv`, the seeded sample drift tests read). Credit's
looked-up fields come from a feature store filled from `models/credit/users.csv`, as in
tools/credit.py.
"""

import csv
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
            write_rows(path, header, training_rows(data.data, data.target))
            # Run beside the data, so the profile names it without the temporary folder.
            wafer("profile", str(ROOT / "models" / name), "--data", path.name, cwd=tmp)
        # Credit: the 900 training records, lookups from the store credit.py filled.
        rows = dataset(1000, np.random.RandomState(11))[:900]
        credit.write_csv(rows, tmp / "credit.csv")
        db = str(tmp / "features.db")
        wafer("features", "load", "--db", db, "--store", "users", "models/credit/users.csv", "--key", "user_id")
        wafer("profile", str(ROOT / "models" / "credit"), "--data", "credit.csv", "--db", db, cwd=tmp)
