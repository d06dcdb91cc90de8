"""What scikit-learn's preprocessing gives on a small dataset, for crates/features' unit tests.

Imported by tools/make_models.py inside the pinned venv (`python3 tools/make_models.py features`).
Writes `crates/features/fixtures/sklearn.json`: training and test columns (NaN as null), and for
each transform the statistics scikit-learn learns and its output on the test rows.
"""

import json
from pathlib import Path

import numpy as np
from sklearn.feature_extraction import FeatureHasher
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import (
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)

OUT = Path(__file__).resolve().parent.parent / "crates" / "features" / "fixtures" / "sklearn.json"


def col(a):
    return [None if isinstance(v, float) and np.isnan(v) else (v if isinstance(v, str) else float(v)) for v in a]


def build():
    rng = np.random.RandomState(3)
    n_train, n_test = 40, 12
    income = np.round(rng.lognormal(10, 0.5, n_train + n_test), 2)
    income[rng.rand(len(income)) < 0.15] = np.nan
    age = rng.randint(18, 80, n_train + n_test).astype(float)
    countries = np.array(["FR", "DE", "ES", "IT", "PL", "NL"])
    country = countries[rng.choice(6, n_train + n_test, p=[0.3, 0.25, 0.2, 0.15, 0.06, 0.04])].astype(object)
    country[n_train + 2] = "JP"  # never seen in training
    country[n_train + 7] = "BR"
    merchant = np.array([f"m{rng.randint(0, 500)}" for _ in range(n_train + n_test)], dtype=object)
    tr, te = slice(0, n_train), slice(n_train, None)

    fx = {
        "train": {"income": col(income[tr]), "age": col(age[tr]), "country": list(country[tr]),
                  "merchant": list(merchant[tr])},
        "test": {"income": col(income[te]), "age": col(age[te]), "country": list(country[te]),
                 "merchant": list(merchant[te])},
    }

    # Imputation of numbers (mean, median, most frequent) and of strings.
    for strategy in ["mean", "median", "most_frequent"]:
        imp = SimpleImputer(strategy=strategy).fit(income[tr].reshape(-1, 1))
        fx[f"impute_{strategy}"] = {"value": float(imp.statistics_[0]),
                                    "out": col(imp.transform(income[te].reshape(-1, 1)).ravel())}
    imp = SimpleImputer(strategy="most_frequent").fit(country[tr].reshape(-1, 1))
    fx["impute_most_frequent_string"] = {"value": imp.statistics_[0]}

    # Scalers on age (no missing values).
    ss = StandardScaler().fit(age[tr].reshape(-1, 1))
    fx["standard"] = {"mean": float(ss.mean_[0]), "std": float(ss.scale_[0]),
                      "out": col(ss.transform(age[te].reshape(-1, 1)).ravel())}
    mm = MinMaxScaler().fit(age[tr].reshape(-1, 1))
    fx["min_max"] = {"min": float(mm.data_min_[0]), "max": float(mm.data_max_[0]),
                     "out": col(mm.transform(age[te].reshape(-1, 1)).ravel())}

    # KBinsDiscretizer with given edges (set after fitting), ordinal and one-hot.
    edges = [18.0, 30.0, 45.0, 60.0, 80.0]
    for encode in ["ordinal", "onehot-dense"]:
        kb = KBinsDiscretizer(n_bins=4, encode=encode, strategy="uniform").fit(age[tr].reshape(-1, 1))
        kb.bin_edges_ = np.array([np.array(edges)], dtype=object)
        if encode == "onehot-dense":
            kb._encoder.categories_ = [np.arange(4, dtype=np.float64)]
        out = kb.transform(age[te].reshape(-1, 1))
        fx[f"kbins_{encode.split('-')[0]}"] = {"inner_edges": edges[1:-1],
                                               "out": [col(r) for r in np.asarray(out)]}

    # Categories: one-hot ignoring unknowns, ordinal with -1 for unknowns, min_frequency.
    oh = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(country[tr].reshape(-1, 1))
    fx["one_hot"] = {"vocabulary": list(oh.categories_[0]),
                     "out": [col(r) for r in oh.transform(country[te].reshape(-1, 1))]}
    od = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1).fit(country[tr].reshape(-1, 1))
    fx["ordinal"] = {"vocabulary": list(od.categories_[0]),
                     "out": col(od.transform(country[te].reshape(-1, 1)).ravel())}
    counts = {c: int((country[tr] == c).sum()) for c in set(country[tr])}
    fx["min_frequency_3"] = sorted(c for c, k in counts.items() if k >= 3)

    # FeatureHasher on the merchant ids, with and without alternate signs.
    for sign in [True, False]:
        fh = FeatureHasher(n_features=16, input_type="string", alternate_sign=sign)
        out = fh.transform([[m] for m in merchant[te]]).toarray()
        fx[f"hash_{'signed' if sign else 'unsigned'}"] = {"n_features": 16, "out": [col(r) for r in out]}

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(fx, indent=1) + "\n")
    print(f"features: {OUT.relative_to(OUT.parents[3])}")
