"""The model zoo: the scikit-learn estimators people use every day, exported with skl2onnx.

Imported by tools/make_models.py inside the pinned venv. For every model it writes, under
`models/zoo/<name>/`:
  model.onnx   the skl2onnx export (ai.onnx 17, ai.onnx.ml 3)
  case.json    the test rows as named v2 tensors (NaN as null), the outputs onnxruntime gives on
               them, what scikit-learn gives, and any per-model tolerance with its reason
  README.md    estimator, dataset, versions, sha256 of model.onnx
Every dataset ships with scikit-learn, so nothing is downloaded.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import skl2onnx
import sklearn
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType
from sklearn import datasets
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    LinearRegression,
    LogisticRegression,
    Ridge,
    SGDClassifier,
)
from sklearn.model_selection import train_test_split
from sklearn.naive_bayes import GaussianNB
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    Binarizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    StandardScaler,
)
from sklearn.svm import SVC, SVR, LinearSVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from zoo_format import DATATYPES, datatype, element, ort_outputs, tensor  # noqa: F401 (ops.py imports tensor)

OPSETS = {"": 17, "ai.onnx.ml": 3}


def _patch_bool_attributes():
    """skl2onnx 1.20 passes numpy booleans in `nodes_missing_value_tracks_true` (HistGradientBoosting
    with missing values), which onnx 1.23 refuses in an INTS attribute; pass them as 0/1."""
    import skl2onnx.common._container as container

    make_node = container.make_node

    def make_node_with_int_flags(*args, **attrs):
        for key, value in attrs.items():
            if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
                attrs[key] = [int(v) for v in value]
        return make_node(*args, **attrs)

    container.make_node = make_node_with_int_flags


_patch_bool_attributes()
TEST_ROWS = 40


def write(name, estimator, onx, feeds, sk, description, source, tolerance=None, classes=None):
    out_dir = Path(__file__).resolve().parent.parent / "models" / "zoo" / name
    out_dir.mkdir(parents=True, exist_ok=True)
    # skl2onnx lists the opsets in set order, which varies between runs; sort them so that the
    # same model always gives the same bytes.
    opsets = sorted(onx.opset_import, key=lambda o: o.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    model_bytes = onx.SerializeToString()
    (out_dir / "model.onnx").write_bytes(model_bytes)
    names, values = ort_outputs(onx, feeds)
    outputs = []
    for n, v in zip(names, values):
        if isinstance(v, list):
            # ZipMap: a list of {class: probability}. wafer serves the probabilities tensor it
            # wraps, one column per class in the model's class order.
            v = np.array([[row[c] for c in classes] for row in v], dtype=np.float32)
        outputs.append(tensor(n, v))
    case = {
        "model": name,
        "inputs": [tensor(k, v) for k, v in feeds.items()],
        "onnxruntime": outputs,
        "sklearn": {k: [element(x) for x in np.asarray(v).reshape(-1)] for k, v in sk.items()},
    }
    if tolerance:
        case["tolerance"] = tolerance
    if classes is not None:
        case["class_labels"] = [element(c) for c in classes]
    (out_dir / "case.json").write_text(json.dumps(case, separators=(",", ":")) + "\n")
    sha = hashlib.sha256(model_bytes).hexdigest()
    ops = sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in onx.graph.node})
    (out_dir / "README.md").write_text(
        f"""# zoo/{name}

{description}

- estimator: `{estimator!r}`
- source: {source}
- inputs: {", ".join(f"`{t['name']}` {t['datatype']} {t['shape'][1:]}" for t in case["inputs"])}
- outputs: {", ".join(f"`{t['name']}` {t['datatype']}" for t in outputs)}
- ONNX operators: {", ".join(ops)}
- test set: {TEST_ROWS} held-back rows; model.onnx sha256 `{sha}`
- versions: scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}

Regenerate with `python3 tools/make_models.py zoo`.
"""
    )
    print(f"zoo/{name}: {', '.join(ops)}")


def split(X, y, stratify=True):
    X_train, X_test, y_train, _ = train_test_split(
        X, y, test_size=TEST_ROWS, random_state=0, stratify=y if stratify else None
    )
    return X_train, X_test, y_train


def export_single(name, estimator, X, y, description, source, *, classifier, zipmap=False,
                  stratify=True, tolerance=None, opsets=OPSETS):
    """An estimator over one float32 input `X`; `opsets=None` keeps skl2onnx's defaults."""
    X = X.astype(np.float32)
    X_train, X_test, y_train = split(X, y, stratify)
    estimator.fit(X_train, y_train)
    options = {id(estimator): {"zipmap": False}} if classifier and not zipmap else {}
    try:
        onx = to_onnx(estimator, X_train[:1], options=options, target_opset=opsets)
    except NameError:
        # Some classifiers (LinearSVC) have no ZipMap to turn off.
        onx = to_onnx(estimator, X_train[:1], target_opset=opsets)
    sk = {"predict": estimator.predict(X_test)}
    if classifier and hasattr(estimator, "predict_proba"):
        sk["predict_proba"] = estimator.predict_proba(X_test)
    elif classifier:
        sk["decision_function"] = estimator.decision_function(X_test)
    classes = getattr(estimator, "classes_", None) if zipmap else None
    write(name, estimator, onx, {"X": X_test}, sk, description, source, tolerance, classes)


def build():
    iris = datasets.load_iris()
    wine = datasets.load_wine()
    cancer = datasets.load_breast_cancer()
    diabetes = datasets.load_diabetes()
    digits = datasets.load_digits()
    src = {
        "iris": "sklearn.datasets.load_iris",
        "wine": "sklearn.datasets.load_wine",
        "cancer": "sklearn.datasets.load_breast_cancer",
        "diabetes": "sklearn.datasets.load_diabetes",
        "digits": "sklearn.datasets.load_digits",
    }
    # Linear models.
    export_single("logreg_binary", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                  cancer.data, cancer.target, "StandardScaler + binary LogisticRegression.",
                  src["cancer"], classifier=True)
    export_single("logreg_multiclass", LogisticRegression(max_iter=5000), wine.data, wine.target,
                  "Multiclass LogisticRegression on 13 wine measurements.", src["wine"],
                  classifier=True)
    export_single("linear_regression", LinearRegression(), diabetes.data, diabetes.target,
                  "LinearRegression.", src["diabetes"], classifier=False, stratify=False)
    export_single("ridge", Ridge(alpha=0.5), diabetes.data, diabetes.target, "Ridge regression.",
                  src["diabetes"], classifier=False, stratify=False)
    export_single("sgd_classifier", make_pipeline(StandardScaler(), SGDClassifier(random_state=0)),
                  wine.data, wine.target, "StandardScaler + SGDClassifier (hinge loss: scores, no probabilities).",
                  src["wine"], classifier=True)
    # skl2onnx 1.20 cannot convert LinearSVC inside a Pipeline, so the features come standardized.
    export_single("linear_svc", LinearSVC(random_state=0), StandardScaler().fit_transform(cancer.data),
                  cancer.target, "Binary LinearSVC on standardized features.",
                  src["cancer"] + ", standardized", classifier=True)
    # SVMs.
    export_single("svc_rbf", make_pipeline(StandardScaler(), SVC(kernel="rbf", probability=True, random_state=0)),
                  iris.data, iris.target, "StandardScaler + SVC(rbf, probability=True), 3 classes.",
                  src["iris"], classifier=True)
    export_single("svc_binary_poly", make_pipeline(StandardScaler(), SVC(kernel="poly", degree=3, probability=True, random_state=0)),
                  cancer.data, cancer.target, "StandardScaler + binary SVC(poly, probability=True).",
                  src["cancer"], classifier=True)
    export_single("svr", make_pipeline(StandardScaler(), SVR(C=50.0)), diabetes.data, diabetes.target,
                  "StandardScaler + SVR(rbf).", src["diabetes"], classifier=False, stratify=False)
    # Trees.
    export_single("decision_tree_classifier", DecisionTreeClassifier(max_depth=6, random_state=0),
                  wine.data, wine.target, "DecisionTreeClassifier.", src["wine"], classifier=True)
    export_single("decision_tree_regressor", DecisionTreeRegressor(max_depth=6, random_state=0),
                  diabetes.data, diabetes.target, "DecisionTreeRegressor.", src["diabetes"],
                  classifier=False, stratify=False)
    export_single("random_forest_classifier", RandomForestClassifier(n_estimators=30, max_depth=8, random_state=0),
                  cancer.data, cancer.target, "Binary RandomForestClassifier.", src["cancer"],
                  classifier=True)
    export_single("random_forest_regressor", RandomForestRegressor(n_estimators=30, max_depth=8, random_state=0),
                  diabetes.data, diabetes.target, "RandomForestRegressor.", src["diabetes"],
                  classifier=False, stratify=False)
    export_single("extra_trees_classifier", ExtraTreesClassifier(n_estimators=30, max_depth=8, random_state=0),
                  wine.data, wine.target, "ExtraTreesClassifier, 3 classes.", src["wine"],
                  classifier=True)
    export_single("extra_trees_regressor", ExtraTreesRegressor(n_estimators=30, max_depth=8, random_state=0),
                  diabetes.data, diabetes.target, "ExtraTreesRegressor.", src["diabetes"],
                  classifier=False, stratify=False)
    export_single("gradient_boosting_classifier", GradientBoostingClassifier(n_estimators=40, random_state=0),
                  cancer.data, cancer.target, "Binary GradientBoostingClassifier.", src["cancer"],
                  classifier=True)
    export_single("gradient_boosting_multiclass", GradientBoostingClassifier(n_estimators=30, random_state=0),
                  iris.data, iris.target, "GradientBoostingClassifier, 3 classes.", src["iris"],
                  classifier=True)
    export_single("gradient_boosting_regressor", GradientBoostingRegressor(n_estimators=60, random_state=0),
                  diabetes.data, diabetes.target, "GradientBoostingRegressor.", src["diabetes"],
                  classifier=False, stratify=False)
    # HistGradientBoosting learns where missing values go: some test values are NaN.
    rng = np.random.RandomState(0)
    wine_nan = wine.data.copy()
    wine_nan[rng.rand(*wine_nan.shape) < 0.1] = np.nan
    export_single("hist_gradient_boosting_classifier", HistGradientBoostingClassifier(max_iter=30, random_state=0),
                  wine_nan, wine.target, "HistGradientBoostingClassifier, 3 classes, 10% missing values.",
                  src["wine"] + " with 10% of values set to NaN", classifier=True)
    diabetes_nan = diabetes.data.copy()
    diabetes_nan[rng.rand(*diabetes_nan.shape) < 0.1] = np.nan
    export_single("hist_gradient_boosting_regressor", HistGradientBoostingRegressor(max_iter=50, random_state=0),
                  diabetes_nan, diabetes.target, "HistGradientBoostingRegressor, 10% missing values.",
                  src["diabetes"] + " with 10% of values set to NaN", classifier=False, stratify=False)
    # Neural.
    export_single("mlp_regressor", make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(32,), max_iter=2000, random_state=0)),
                  diabetes.data, diabetes.target, "StandardScaler + MLPRegressor(32).", src["diabetes"],
                  classifier=False, stratify=False)
    # Pipelines.
    export_single("scaler_logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
                  iris.data, iris.target, "StandardScaler + LogisticRegression.", src["iris"],
                  classifier=True)
    export_single("imputer_minmax_ridge", make_pipeline(SimpleImputer(strategy="mean"), MinMaxScaler(), Ridge(alpha=0.1)),
                  diabetes_nan, diabetes.target, "SimpleImputer(mean) + MinMaxScaler + Ridge, 10% missing values.",
                  src["diabetes"] + " with 10% of values set to NaN", classifier=False, stratify=False)
    export_single("binarizer_logreg", make_pipeline(Binarizer(threshold=7.0), LogisticRegression(max_iter=2000)),
                  digits.data, digits.target, "Binarizer(threshold=7) + LogisticRegression on 8x8 digits.",
                  src["digits"], classifier=True)
    export_single("pca_logreg", make_pipeline(PCA(n_components=12, random_state=0), LogisticRegression(max_iter=3000)),
                  digits.data, digits.target, "PCA(12) + LogisticRegression on 8x8 digits.", src["digits"],
                  classifier=True)
    export_single("zipmap_logreg", LogisticRegression(max_iter=1000), iris.data, iris.target,
                  "LogisticRegression exported with skl2onnx's default ZipMap: wafer serves the "
                  "probabilities tensor ZipMap wraps.", src["iris"], classifier=True, zipmap=True)
    # Exported the way most people do, with every skl2onnx default (latest opsets, ZipMap).
    export_single("default_export_random_forest", RandomForestClassifier(n_estimators=10, max_depth=5, random_state=0),
                  iris.data, iris.target, "RandomForestClassifier exported with `to_onnx(model, X[:1])` and "
                  "nothing else: skl2onnx's default opsets and its ZipMap.", src["iris"], classifier=True,
                  zipmap=True, opsets=None)
    export_single("default_export_gradient_boosting", GradientBoostingRegressor(n_estimators=20, random_state=0),
                  diabetes.data, diabetes.target, "GradientBoostingRegressor exported with "
                  "`to_onnx(model, X[:1])` and nothing else: skl2onnx's default opsets.", src["diabetes"],
                  classifier=False, stratify=False, opsets=None)
    string_labels(iris, src["iris"])
    column_transformer(diabetes, src["diabetes"])
    ordinal_encoder(diabetes, src["diabetes"])
    feature_vectorizer(wine, src["wine"])
    onehot_int64()
    isolation_forest()
    gaussian_nb_zipmap(wine, src["wine"])


def string_labels(iris, source):
    """A tree classifier whose class labels are strings."""
    y = np.array(iris.target_names)[iris.target]
    export_single("decision_tree_string_labels", DecisionTreeClassifier(max_depth=4, random_state=0),
                  iris.data, y, "DecisionTreeClassifier whose classes are the iris species names.",
                  source, classifier=True)


def feature_vectorizer(wine, source):
    """Two named inputs of different types, which skl2onnx joins with a FeatureVectorizer."""
    ints = [4, 12]  # magnesium and proline are whole numbers
    floats = [i for i in range(wine.data.shape[1]) if i not in ints]
    X_float = wine.data[:, floats].astype(np.float32)
    X_int = wine.data[:, ints].astype(np.int64)
    idx_train, idx_test = train_test_split(np.arange(len(wine.target)), test_size=TEST_ROWS,
                                           random_state=0, stratify=wine.target)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(np.hstack([X_float, X_int])[idx_train], wine.target[idx_train])
    initial = [("measures", FloatTensorType([None, len(floats)])), ("counts", Int64TensorType([None, 2]))]
    onx = to_onnx(model, initial_types=initial, options={id(model): {"zipmap": False}},
                  target_opset=OPSETS)
    feeds = {"measures": X_float[idx_test], "counts": X_int[idx_test]}
    X_test = np.hstack([X_float, X_int])[idx_test]
    sk = {"predict": model.predict(X_test), "predict_proba": model.predict_proba(X_test)}
    write("feature_vectorizer_logreg", model, onx, feeds, sk,
          "StandardScaler + LogisticRegression over two named inputs: 11 float measurements and "
          "2 whole-number counts (INT64), joined by a FeatureVectorizer.", source)


def ordinal_encoder(diabetes, source):
    """String categories through an OrdinalEncoder (LabelEncoder nodes) into a tree model."""
    data = diabetes.data
    frame = pd.DataFrame({
        "bmi": data[:, 2].astype(np.float32),
        "bp": data[:, 3].astype(np.float32),
        "sex": np.where(data[:, 1] > 0, "female", "male").astype(object),
        "age_band": pd.cut(data[:, 0], bins=[-1, -0.04, 0.0, 0.04, 1],
                           labels=["young", "adult", "middle", "senior"]).astype(str).astype(object),
    })
    X_train, X_test, y_train, _ = train_test_split(frame, diabetes.target, test_size=TEST_ROWS,
                                                   random_state=0)
    numbers, strings = ["bmi", "bp"], ["sex", "age_band"]
    model = make_pipeline(
        ColumnTransformer([("cat", OrdinalEncoder(), strings), ("num", "passthrough", numbers)]),
        GradientBoostingRegressor(n_estimators=40, random_state=0),
    )
    model.fit(X_train, y_train)
    initial = [(c, FloatTensorType([None, 1])) for c in numbers] + [
        (c, StringTensorType([None, 1])) for c in strings
    ]
    onx = to_onnx(model, initial_types=initial, target_opset=OPSETS)
    feeds = {c: X_test[c].to_numpy().reshape(-1, 1) for c in numbers + strings}
    feeds = {k: (v.astype(np.float32) if k in numbers else v.astype(object)) for k, v in feeds.items()}
    write("ordinal_encoder_gbr", model, onx, feeds, {"predict": model.predict(X_test)},
          "ColumnTransformer(OrdinalEncoder on the string columns sex and age_band, numbers passed "
          "through) + GradientBoostingRegressor. One named input per column.",
          source + " with sex and an age band as strings")


def column_transformer(diabetes, source):
    """Numbers and string categories in separate named inputs, as a DataFrame export gives."""
    data = diabetes.data
    frame = pd.DataFrame({
        "age": data[:, 0].astype(np.float32),
        "bmi": data[:, 2].astype(np.float32),
        "bp": data[:, 3].astype(np.float32),
        "sex": np.where(data[:, 1] > 0, "female", "male").astype(object),
        "bmi_band": pd.cut(data[:, 2], bins=[-1, -0.03, 0.0, 0.04, 1],
                           labels=["low", "normal", "high", "very high"]).astype(str).astype(object),
    })
    y = (diabetes.target > np.median(diabetes.target)).astype(np.int64)
    rng = np.random.RandomState(1)
    X_train, X_test, y_train, _ = train_test_split(frame, y, test_size=TEST_ROWS, random_state=0, stratify=y)
    # Categories the model never saw: handle_unknown="ignore" encodes them as all zeros.
    X_test = X_test.copy()
    X_test.iloc[rng.choice(TEST_ROWS, 4, replace=False), 4] = "unseen"
    numbers = ["age", "bmi", "bp"]
    strings = ["sex", "bmi_band"]
    model = make_pipeline(
        ColumnTransformer([
            ("num", StandardScaler(), numbers),
            ("cat", OneHotEncoder(handle_unknown="ignore"), strings),
        ]),
        RandomForestClassifier(n_estimators=20, max_depth=6, random_state=0),
    )
    model.fit(X_train, y_train)
    initial = [(c, FloatTensorType([None, 1])) for c in numbers] + [
        (c, StringTensorType([None, 1])) for c in strings
    ]
    onx = to_onnx(model, initial_types=initial, options={id(model): {"zipmap": False}},
                  target_opset=OPSETS)
    feeds = {c: X_test[c].to_numpy().reshape(-1, 1) for c in numbers + strings}
    feeds = {k: (v.astype(np.float32) if k in numbers else v.astype(object)) for k, v in feeds.items()}
    sk = {"predict": model.predict(X_test), "predict_proba": model.predict_proba(X_test)}
    write("column_transformer_rf", model, onx, feeds, sk,
          "ColumnTransformer(StandardScaler on age, bmi, bp; OneHotEncoder(handle_unknown=\"ignore\") "
          "on the string columns sex and bmi_band) + RandomForestClassifier. One named input per "
          "column, as a DataFrame export gives; 4 test rows carry a category never seen in training.",
          source + " with sex and a bmi band as strings; target: above the median")


def onehot_int64():
    """Integer category codes in one INT64 input, one-hot encoded (ai.onnx.ml OneHotEncoder over
    INT64) into a LogisticRegression."""
    rng = np.random.RandomState(3)
    n = 600
    store, weekday = rng.randint(0, 5, n), rng.randint(0, 7, n)
    channel = rng.choice([101, 205, 309], n)
    X = np.column_stack([store, weekday, channel]).astype(np.int64)
    logit = 0.8 * (store == 2) - 0.6 * (weekday >= 5) + 1.2 * (channel == 309) - 0.4
    y = (rng.rand(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X_train, X_test, y_train = split(X, y)
    # A channel code the model never saw: handle_unknown="ignore" encodes it as all zeros.
    X_test = X_test.copy()
    X_test[rng.choice(TEST_ROWS, 4, replace=False), 2] = 404
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression(max_iter=1000))
    model.fit(X_train, y_train)
    onx = to_onnx(model, initial_types=[("X", Int64TensorType([None, 3]))],
                  options={id(model): {"zipmap": False}}, target_opset=OPSETS)
    sk = {"predict": model.predict(X_test), "predict_proba": model.predict_proba(X_test)}
    write("onehot_int64_logreg", model, onx, {"X": X_test}, sk,
          "OneHotEncoder(handle_unknown=\"ignore\") + binary LogisticRegression over one INT64 input "
          "of 3 integer category codes (store 0-4, weekday 0-6, channel 101/205/309): the "
          "OneHotEncoder nodes take INT64. 4 test rows carry a channel code never seen in training.",
          "synthetic (numpy RandomState(3)): 600 rows, target drawn from a logistic model of the codes")


def isolation_forest():
    """An IsolationForest: labels 1 (inlier) or -1 (outlier) and decision-function scores. The
    export maps leaf indices to path lengths with LabelEncoder nodes over INT64 keys."""
    rng = np.random.RandomState(4)
    inliers = np.vstack([0.4 * rng.randn(150, 2) + 2, 0.4 * rng.randn(150, 2) - 2])
    outliers = rng.uniform(-5, 5, (30, 2))
    X = np.vstack([inliers, outliers]).astype(np.float32)
    truth = np.r_[np.ones(300), -np.ones(30)].astype(np.int64)  # only to stratify the split
    X_train, X_test, _ = split(X, truth)
    model = IsolationForest(n_estimators=20, random_state=0).fit(X_train)
    onx = to_onnx(model, X_train[:1], target_opset=OPSETS)
    sk = {"predict": model.predict(X_test), "decision_function": model.decision_function(X_test)}
    write("isolation_forest", model, onx, {"X": X_test}, sk,
          "IsolationForest(n_estimators=20): outputs `label` (1 inlier, -1 outlier) and `scores` "
          "(decision_function); LabelEncoder nodes over INT64 leaf indices.",
          "synthetic (numpy RandomState(4)): two Gaussian clusters of 150 points and 30 uniform "
          "outliers in 2-D")


def gaussian_nb_zipmap(wine, source):
    """StandardScaler + GaussianNB with skl2onnx's default ZipMap. The export normalizes the joint
    log-likelihoods with ReduceLogSumExp; the test rows scaled 3x have likelihoods below
    exp(-1400), which underflow, so only a stable log-sum-exp gives their probabilities (1.0)."""
    X = wine.data.astype(np.float32)
    X_train, X_test, y_train = split(X, wine.target)
    X_test = X_test.copy()
    X_test[::7] *= np.float32(3)
    model = make_pipeline(StandardScaler(), GaussianNB()).fit(X_train, y_train)
    onx = to_onnx(model, X_train[:1], target_opset=OPSETS)
    assert any(n.op_type == "ReduceLogSumExp" for n in onx.graph.node)
    sk = {"predict": model.predict(X_test), "predict_proba": model.predict_proba(X_test)}
    write("gaussian_nb_zipmap", model, onx, {"X": X_test}, sk,
          "StandardScaler + GaussianNB exported with skl2onnx's default ZipMap: wafer serves the "
          "probabilities tensor ZipMap wraps. The probabilities come from ReduceLogSumExp over "
          "the joint log-likelihoods; 6 test rows (every 7th) are scaled 3x, which puts every "
          "class's log-likelihood below -1400 (exp underflows even in float64), and 26 rows have "
          "a probability of exactly 1.0.",
          source + "; every 7th test row multiplied by 3", classes=model.classes_)
