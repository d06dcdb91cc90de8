"""Single-operator fixtures for the ai.onnx.ml operators wafer implements in crates/scoring.

Imported by tools/make_models.py inside the pinned venv. Each case is a one-node (or two-node)
ONNX model built with onnx.helper and run by onnxruntime on seeded inputs. It writes, under
`crates/scoring/fixtures/ops/`:
  <case>.onnx   the model
  <case>.json   {"inputs": [tensor], "outputs": [tensor]} from onnxruntime, or
                {"inputs": [...], "error": "..."} when onnxruntime refuses the model or input
Cases are named `<operator>_<what they cover>`; the Rust unit tests of each operator run all of
the cases that start with its name.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

from zoo import tensor

OUT = Path(__file__).resolve().parent.parent / "crates" / "scoring" / "fixtures" / "ops"
ML = "ai.onnx.ml"
POST_TRANSFORMS = ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO", "PROBIT"]
ELEM = {
    np.dtype(np.float32): TensorProto.FLOAT,
    np.dtype(np.float64): TensorProto.DOUBLE,
    np.dtype(np.int64): TensorProto.INT64,
    np.dtype(np.int32): TensorProto.INT32,
    np.dtype(object): TensorProto.STRING,
}


def grid(rng, shape, nan=0.0):
    """Float32 values on a 0.25 grid (so BRANCH_EQ and equal thresholds are exercised), some NaN."""
    x = (rng.randint(-2, 7, size=shape) * 0.25).astype(np.float32)
    if nan:
        x[rng.rand(*shape) < nan] = np.nan
    return x


# onnxruntime leaves the second score column uninitialised when PROBIT meets a classifier's single
# binary score, so there is no reference value: wafer refuses these models at load time.
UNDEFINED = {
    "tree_ensemble_classifier_binary_one_id_probit",
    "svm_classifier_binary_probit",
    "linear_classifier_binary_probit",
}


def case(name, op_type, inputs, outputs, attrs, domain=ML, ml_opset=3, extra_nodes=()):
    """Writes one case. `inputs` maps names to arrays; `outputs` maps names to ONNX elem types."""
    node = helper.make_node(op_type, list(inputs), list(outputs), domain=domain, name=name, **attrs)
    graph = helper.make_graph(
        [node, *extra_nodes],
        name,
        [helper.make_tensor_value_info(k, ELEM[v.dtype], [None, *v.shape[1:]]) for k, v in inputs.items()],
        [helper.make_tensor_value_info(k, t, None) for k, t in outputs.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, ml_opset)]
    )
    model.ir_version = 8
    data = model.SerializeToString()
    (OUT / f"{name}.onnx").write_bytes(data)
    result = {"inputs": [tensor(k, v) for k, v in inputs.items()]}
    if name in UNDEFINED:
        result["undefined"] = "onnxruntime leaves the second column uninitialised (PROBIT on one binary score)"
        (OUT / f"{name}.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
        print(f"ops/{name}: undefined")
        return
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        values = sess.run(None, inputs)
        result["outputs"] = [tensor(o.name, v) for o, v in zip(sess.get_outputs(), values)]
    except Exception as e:  # noqa: BLE001 - onnxruntime's refusal is the expected result
        result["error"] = str(e).splitlines()[0][:300]
    (OUT / f"{name}.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"ops/{name}: {'error' if 'error' in result else 'ok'}")


# Two small trees over 3 features that use every node mode and both missing-value directions.
TREES = [
    # (tree, node, feature, value, mode, true, false, missing_tracks_true)
    (0, 0, 0, 0.5, "BRANCH_LEQ", 1, 2, 1),
    (0, 1, 1, 0.25, "BRANCH_LT", 3, 4, 0),
    (0, 2, 2, 0.75, "BRANCH_GTE", 5, 6, 1),
    (0, 3, 0, 0.0, "LEAF", 0, 0, 0),
    (0, 4, 0, 0.0, "LEAF", 0, 0, 0),
    (0, 5, 0, 1.0, "BRANCH_GT", 7, 8, 0),
    (0, 6, 0, 0.0, "LEAF", 0, 0, 0),
    (0, 7, 0, 0.0, "LEAF", 0, 0, 0),
    (0, 8, 0, 0.0, "LEAF", 0, 0, 0),
    (1, 0, 1, 0.5, "BRANCH_EQ", 1, 2, 0),
    (1, 1, 0, 0.0, "LEAF", 0, 0, 0),
    (1, 2, 2, 0.25, "BRANCH_NEQ", 3, 4, 1),
    (1, 3, 0, 0.0, "LEAF", 0, 0, 0),
    (1, 4, 0, 0.0, "LEAF", 0, 0, 0),
]
LEAVES = [(0, 3), (0, 4), (0, 6), (0, 7), (0, 8), (1, 1), (1, 3), (1, 4)]


def tree_nodes():
    cols = list(zip(*TREES))
    return {
        "nodes_treeids": list(cols[0]),
        "nodes_nodeids": list(cols[1]),
        "nodes_featureids": list(cols[2]),
        "nodes_values": [float(v) for v in cols[3]],
        "nodes_modes": list(cols[4]),
        "nodes_truenodeids": list(cols[5]),
        "nodes_falsenodeids": list(cols[6]),
        "nodes_missing_value_tracks_true": list(cols[7]),
    }


def leaf_weights(prefix, n_targets, rng, only=None):
    """Leaf weights for `n_targets` targets/classes (`only`: the one id every leaf writes to)."""
    tree_ids, node_ids, ids, weights = [], [], [], []
    for i, (t, n) in enumerate(LEAVES):
        targets = [only] if only is not None else [j for j in range(n_targets) if (i + j) % 3 != 2]
        for j in targets:
            tree_ids.append(t)
            node_ids.append(n)
            ids.append(j)
            weights.append(float(np.round(rng.uniform(-1.5, 2.0), 3)))
    return {
        f"{prefix}_treeids": tree_ids,
        f"{prefix}_nodeids": node_ids,
        f"{prefix}_ids": ids,
        f"{prefix}_weights": weights,
    }


def trees(rng):
    X = grid(rng, (24, 3), nan=0.1)
    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        attrs = {**tree_nodes(), **leaf_weights("target", 2, rng), "n_targets": 2,
                 "aggregate_function": agg}
        case(f"tree_ensemble_regressor_{agg.lower()}", "TreeEnsembleRegressor", {"X": X},
             {"Y": TensorProto.FLOAT}, attrs)
    attrs = {**tree_nodes(), **leaf_weights("target", 2, rng), "n_targets": 2, "base_values": [0.5, -1.0]}
    case("tree_ensemble_regressor_base_values", "TreeEnsembleRegressor", {"X": X},
         {"Y": TensorProto.FLOAT}, attrs)
    attrs = {**tree_nodes(), **leaf_weights("target", 2, rng), "n_targets": 2,
             "base_values": [0.5, -1.0], "aggregate_function": "AVERAGE"}
    case("tree_ensemble_regressor_average_base_values", "TreeEnsembleRegressor", {"X": X},
         {"Y": TensorProto.FLOAT}, attrs)
    for pt in POST_TRANSFORMS:
        attrs = {**tree_nodes(), **leaf_weights("target", 2, rng), "n_targets": 2, "post_transform": pt}
        case(f"tree_ensemble_regressor_{pt.lower()}", "TreeEnsembleRegressor", {"X": X},
             {"Y": TensorProto.FLOAT}, attrs)
    attrs = {**tree_nodes(), **leaf_weights("target", 1, rng), "n_targets": 1, "post_transform": "PROBIT"}
    case("tree_ensemble_regressor_probit_one_target", "TreeEnsembleRegressor", {"X": X},
         {"Y": TensorProto.FLOAT}, attrs)
    nodes = tree_nodes()
    nodes["nodes_values_as_tensor"] = helper.make_tensor(
        "v", TensorProto.DOUBLE, [len(nodes["nodes_values"])], [float(v) for v in nodes.pop("nodes_values")])
    attrs = {**nodes, **leaf_weights("target", 1, rng), "n_targets": 1,
             "base_values_as_tensor": helper.make_tensor("b", TensorProto.DOUBLE, [1], [0.25])}
    case("tree_ensemble_regressor_as_tensor", "TreeEnsembleRegressor", {"X": X.astype(np.float64)},
         {"Y": TensorProto.FLOAT}, attrs)
    case("tree_ensemble_regressor_double_input", "TreeEnsembleRegressor", {"X": X.astype(np.float64)},
         {"Y": TensorProto.FLOAT}, {**tree_nodes(), **leaf_weights("target", 1, rng), "n_targets": 1})
    bad = {**tree_nodes(), **leaf_weights("target", 1, rng), "n_targets": 1, "aggregate_function": "MEDIAN"}
    case("tree_ensemble_regressor_bad_aggregate", "TreeEnsembleRegressor", {"X": X},
         {"Y": TensorProto.FLOAT}, bad)
    bad = {**tree_nodes(), **leaf_weights("target", 1, rng), "n_targets": 1}
    bad["nodes_truenodeids"] = [99 if i == 1 else v for i, v in enumerate(bad["nodes_truenodeids"])]
    case("tree_ensemble_regressor_bad_node_id", "TreeEnsembleRegressor", {"X": X},
         {"Y": TensorProto.FLOAT}, bad)

    outs = {"label": TensorProto.INT64, "scores": TensorProto.FLOAT}
    for pt in POST_TRANSFORMS:
        attrs = {**tree_nodes(), **leaf_weights("class", 3, rng), "classlabels_int64s": [3, 5, 7],
                 "post_transform": pt}
        case(f"tree_ensemble_classifier_{pt.lower()}", "TreeEnsembleClassifier", {"X": X}, outs, attrs)
    attrs = {**tree_nodes(), **leaf_weights("class", 3, rng), "classlabels_int64s": [0, 1, 2],
             "base_values": [0.1, 0.2, -0.3]}
    case("tree_ensemble_classifier_base_values", "TreeEnsembleClassifier", {"X": X}, outs, attrs)
    # Binary, as RandomForestClassifier exports it: leaves write probabilities for both classes.
    probs = leaf_weights("class", 2, rng)
    probs["class_weights"] = [abs(w) / 2.0 for w in probs["class_weights"]]
    for pt in ["NONE", "LOGISTIC"]:
        attrs = {**tree_nodes(), **probs, "classlabels_int64s": [0, 1], "post_transform": pt}
        case(f"tree_ensemble_classifier_binary_two_ids_{pt.lower()}", "TreeEnsembleClassifier",
             {"X": X}, outs, attrs)
    # Binary, as GradientBoostingClassifier exports it: one score, for the second class.
    for pt in POST_TRANSFORMS:
        attrs = {**tree_nodes(), **leaf_weights("class", 2, rng, only=0), "classlabels_int64s": [0, 1],
                 "post_transform": pt, "base_values": [0.3]}
        case(f"tree_ensemble_classifier_binary_one_id_{pt.lower()}", "TreeEnsembleClassifier",
             {"X": X}, outs, attrs)
    # Binary with positive weights only (a single tree's probability of the second class).
    positive = leaf_weights("class", 2, rng, only=1)
    positive["class_weights"] = [abs(w) / 4.0 for w in positive["class_weights"]]
    attrs = {**tree_nodes(), **positive, "classlabels_int64s": [0, 1]}
    case("tree_ensemble_classifier_binary_positive", "TreeEnsembleClassifier", {"X": X}, outs, attrs)
    attrs = {**tree_nodes(), **leaf_weights("class", 2, rng, only=0), "classlabels_int64s": [0, 1],
             "post_transform": "LOGISTIC", "base_values": [0.3, 0.3]}
    case("tree_ensemble_classifier_binary_two_base_values", "TreeEnsembleClassifier", {"X": X}, outs, attrs)
    attrs = {**tree_nodes(), **leaf_weights("class", 3, rng), "classlabels_strings": ["setosa", "versicolor", "virginica"]}
    case("tree_ensemble_classifier_strings", "TreeEnsembleClassifier", {"X": X},
         {"label": TensorProto.STRING, "scores": TensorProto.FLOAT}, attrs)
    attrs = {**tree_nodes(), **leaf_weights("class", 3, rng), "classlabels_int64s": [0, 1, 2]}
    attrs["nodes_modes"] = ["BRANCH_SOMETIMES" if m == "BRANCH_LT" else m for m in attrs["nodes_modes"]]
    case("tree_ensemble_classifier_bad_mode", "TreeEnsembleClassifier", {"X": X}, outs, attrs)


def svm(rng):
    X = rng.uniform(-1.5, 1.5, size=(16, 4)).astype(np.float32)
    sv = rng.uniform(-1.0, 1.0, size=(6, 4)).astype(np.float32)
    kernels = {"LINEAR": [0.0, 0.0, 0.0], "POLY": [0.4, 0.5, 3.0], "RBF": [0.7, 0.0, 0.0],
               "SIGMOID": [0.3, 0.2, 0.0]}
    outs = {"label": TensorProto.INT64, "scores": TensorProto.FLOAT}
    # 3 classes with 2 support vectors each: (3-1) coefficients per support vector.
    coef3 = [float(np.round(v, 3)) for v in rng.uniform(-1, 1, size=2 * 6)]
    for kernel, params in kernels.items():
        base = {"kernel_type": kernel, "kernel_params": params, "support_vectors": sv.reshape(-1).tolist(),
                "vectors_per_class": [2, 2, 2], "coefficients": coef3, "rho": [0.1, -0.2, 0.05],
                "classlabels_ints": [1, 2, 3]}
        case(f"svm_classifier_{kernel.lower()}", "SVMClassifier", {"X": X}, outs, base)
        case(f"svm_classifier_{kernel.lower()}_proba", "SVMClassifier", {"X": X}, outs,
             {**base, "prob_a": [-1.5, -2.0, -0.7], "prob_b": [0.1, -0.2, 0.3]})
    base = {"kernel_type": "RBF", "kernel_params": [0.7, 0.0, 0.0], "support_vectors": sv.reshape(-1).tolist(),
            "vectors_per_class": [2, 2, 2], "coefficients": coef3, "rho": [0.1, -0.2, 0.05],
            "classlabels_ints": [1, 2, 3]}
    for pt in POST_TRANSFORMS[1:]:
        case(f"svm_classifier_rbf_{pt.lower()}", "SVMClassifier", {"X": X}, outs, {**base, "post_transform": pt})
    # Binary: 3 + 3 support vectors, one coefficient each.
    coef2 = [float(np.round(v, 3)) for v in rng.uniform(-1, 1, size=6)]
    binary = {"kernel_type": "RBF", "kernel_params": [0.5, 0.0, 0.0], "support_vectors": sv.reshape(-1).tolist(),
              "vectors_per_class": [3, 3], "coefficients": coef2, "rho": [0.15], "classlabels_ints": [0, 1]}
    case("svm_classifier_binary", "SVMClassifier", {"X": X}, outs, binary)
    case("svm_classifier_binary_proba", "SVMClassifier", {"X": X}, outs,
         {**binary, "prob_a": [-1.8], "prob_b": [0.2]})
    for pt in POST_TRANSFORMS[1:]:
        case(f"svm_classifier_binary_{pt.lower()}", "SVMClassifier", {"X": X}, outs, {**binary, "post_transform": pt})
    case("svm_classifier_binary_strings", "SVMClassifier", {"X": X},
         {"label": TensorProto.STRING, "scores": TensorProto.FLOAT},
         {**{k: v for k, v in binary.items() if k != "classlabels_ints"}, "classlabels_strings": ["no", "yes"]})
    # Linear mode: no support vectors, one weight row (and rho) per class.
    lin = {"kernel_type": "LINEAR", "kernel_params": [0.0, 0.0, 0.0], "coefficients": [float(np.round(v, 3)) for v in rng.uniform(-1, 1, size=12)],
           "rho": [0.1, -0.2, 0.05], "classlabels_ints": [1, 2, 3]}
    case("svm_classifier_linear_mode", "SVMClassifier", {"X": X}, outs, lin)
    lin2 = {"kernel_type": "LINEAR", "kernel_params": [0.0, 0.0, 0.0], "coefficients": [0.5, -0.25, 0.75, 1.0, -0.5, 0.25, 0.1, -1.0], "rho": [0.1],
            "classlabels_ints": [0, 1]}
    case("svm_classifier_linear_mode_binary", "SVMClassifier", {"X": X}, outs, lin2)
    bad = {**base, "vectors_per_class": [2, 2]}
    case("svm_classifier_bad_vectors_per_class", "SVMClassifier", {"X": X}, outs, bad)

    coef = [float(np.round(v, 3)) for v in rng.uniform(-1, 1, size=6)]
    for kernel, params in kernels.items():
        attrs = {"kernel_type": kernel, "kernel_params": params, "support_vectors": sv.reshape(-1).tolist(),
                 "n_supports": 6, "coefficients": coef, "rho": [0.3]}
        case(f"svm_regressor_{kernel.lower()}", "SVMRegressor", {"X": X}, {"Y": TensorProto.FLOAT}, attrs)
    attrs = {"kernel_params": [0.5, 0.0, 0.0], "support_vectors": sv.reshape(-1).tolist(),
             "n_supports": 6, "coefficients": coef, "rho": [0.3]}
    case("svm_regressor_default_kernel", "SVMRegressor", {"X": X}, {"Y": TensorProto.FLOAT}, attrs)
    attrs = {"kernel_type": "RBF", "kernel_params": [0.5, 0.0, 0.0], "support_vectors": sv.reshape(-1).tolist(),
             "n_supports": 6, "coefficients": coef, "rho": [0.3], "one_class": 1}
    case("svm_regressor_one_class", "SVMRegressor", {"X": X}, {"Y": TensorProto.FLOAT}, attrs)
    attrs = {"kernel_type": "LINEAR", "kernel_params": [0.0, 0.0, 0.0], "coefficients": [0.5, -0.25, 0.75, 1.0], "rho": [0.1], "n_supports": 0}
    case("svm_regressor_linear_mode", "SVMRegressor", {"X": X}, {"Y": TensorProto.FLOAT}, attrs)
    for pt in ["LOGISTIC", "PROBIT"]:
        attrs = {"kernel_type": "RBF", "kernel_params": [0.5, 0.0, 0.0], "support_vectors": sv.reshape(-1).tolist(),
                 "n_supports": 6, "coefficients": coef, "rho": [0.3], "post_transform": pt}
        case(f"svm_regressor_{pt.lower()}", "SVMRegressor", {"X": X}, {"Y": TensorProto.FLOAT}, attrs)


def linear(rng):
    X = rng.uniform(-2, 2, size=(12, 3)).astype(np.float32)
    outs = {"label": TensorProto.INT64, "scores": TensorProto.FLOAT}
    coef3 = [float(np.round(v, 3)) for v in rng.uniform(-1, 1, size=9)]
    for pt in POST_TRANSFORMS:
        case(f"linear_classifier_{pt.lower()}", "LinearClassifier", {"X": X}, outs,
             {"coefficients": coef3, "intercepts": [0.1, -0.2, 0.3], "classlabels_ints": [0, 1, 2],
              "post_transform": pt})
        case(f"linear_classifier_binary_{pt.lower()}", "LinearClassifier", {"X": X}, outs,
             {"coefficients": coef3[:3], "intercepts": [0.1], "classlabels_ints": [0, 1], "post_transform": pt})
    case("linear_classifier_strings", "LinearClassifier", {"X": X},
         {"label": TensorProto.STRING, "scores": TensorProto.FLOAT},
         {"coefficients": coef3, "intercepts": [0.0, 0.5, -0.5], "classlabels_strings": ["a", "b", "c"]})
    case("linear_classifier_binary_strings", "LinearClassifier", {"X": X},
         {"label": TensorProto.STRING, "scores": TensorProto.FLOAT},
         {"coefficients": coef3[:3], "intercepts": [-0.1], "classlabels_strings": ["no", "yes"]})
    case("linear_classifier_int64_input", "LinearClassifier", {"X": np.round(X * 3).astype(np.int64)}, outs,
         {"coefficients": coef3, "intercepts": [0.0, 0.5, -0.5], "classlabels_ints": [0, 1, 2]})
    case("linear_classifier_bad_coefficients", "LinearClassifier", {"X": X}, outs,
         {"coefficients": coef3[:7], "intercepts": [0.0, 0.5, -0.5], "classlabels_ints": [0, 1, 2]})
    for pt in POST_TRANSFORMS:
        case(f"linear_regressor_{pt.lower()}", "LinearRegressor", {"X": X}, {"Y": TensorProto.FLOAT},
             {"coefficients": coef3[:6], "intercepts": [0.5, -0.5], "targets": 2, "post_transform": pt})
    case("linear_regressor_defaults", "LinearRegressor", {"X": X}, {"Y": TensorProto.FLOAT},
         {"coefficients": coef3[:3]})


def encoders(rng):
    X = rng.uniform(-2, 2, size=(8, 3)).astype(np.float32)
    case("scaler_per_column", "Scaler", {"X": X}, {"Y": TensorProto.FLOAT},
         {"offset": [0.5, -1.0, 0.25], "scale": [2.0, 0.5, -1.0]})
    case("scaler_broadcast", "Scaler", {"X": X}, {"Y": TensorProto.FLOAT}, {"offset": [0.5], "scale": [3.0]})
    case("scaler_double_input", "Scaler", {"X": X.astype(np.float64)}, {"Y": TensorProto.FLOAT},
         {"offset": [0.5, -1.0, 0.25], "scale": [2.0, 0.5, -1.0]})
    case("scaler_int64_input", "Scaler", {"X": np.round(X * 4).astype(np.int64)}, {"Y": TensorProto.FLOAT},
         {"offset": [1.0], "scale": [0.5]})
    case("scaler_no_offset", "Scaler", {"X": X}, {"Y": TensorProto.FLOAT}, {"scale": [2.0, 0.5, -1.0]})
    case("scaler_bad_length", "Scaler", {"X": X}, {"Y": TensorProto.FLOAT}, {"offset": [0.5, 1.0], "scale": [2.0]})

    ints = rng.randint(0, 7, size=(8, 1)).astype(np.int64)
    case("one_hot_encoder_int64", "OneHotEncoder", {"X": ints}, {"Y": TensorProto.FLOAT},
         {"cats_int64s": [1, 3, 5, 6]})
    case("one_hot_encoder_int64_zeros0", "OneHotEncoder", {"X": ints}, {"Y": TensorProto.FLOAT},
         {"cats_int64s": [1, 3, 5, 6], "zeros": 0})
    case("one_hot_encoder_int64_zeros0_known", "OneHotEncoder", {"X": np.array([[1], [6], [3]], dtype=np.int64)},
         {"Y": TensorProto.FLOAT}, {"cats_int64s": [1, 3, 5, 6], "zeros": 0})
    strings = np.array([["red", "x"], ["green", "blue"], ["blue", "red"], ["", "green"]], dtype=object)
    case("one_hot_encoder_strings", "OneHotEncoder", {"X": strings}, {"Y": TensorProto.FLOAT},
         {"cats_strings": ["blue", "green", "red"]})
    case("one_hot_encoder_float_input", "OneHotEncoder", {"X": np.array([[1.0], [3.0], [2.5]], dtype=np.float32)},
         {"Y": TensorProto.FLOAT}, {"cats_int64s": [1, 2, 3]})
    case("one_hot_encoder_no_categories", "OneHotEncoder", {"X": ints}, {"Y": TensorProto.FLOAT}, {})

    Xn = X.copy()
    Xn[rng.rand(*Xn.shape) < 0.3] = np.nan
    case("imputer_nan", "Imputer", {"X": Xn}, {"Y": TensorProto.FLOAT},
         {"imputed_value_floats": [1.0, 2.0, 3.0], "replaced_value_float": float("nan")})
    case("imputer_broadcast", "Imputer", {"X": Xn}, {"Y": TensorProto.FLOAT},
         {"imputed_value_floats": [-7.0], "replaced_value_float": float("nan")})
    Xz = np.round(X).astype(np.float32)
    case("imputer_value", "Imputer", {"X": Xz}, {"Y": TensorProto.FLOAT}, {"imputed_value_floats": [9.0, 8.0, 7.0]})
    case("imputer_int64", "Imputer", {"X": np.round(X).astype(np.int64)}, {"Y": TensorProto.INT64},
         {"imputed_value_int64s": [5], "replaced_value_int64": -1})
    case("imputer_missing_values", "Imputer", {"X": Xn}, {"Y": TensorProto.FLOAT}, {})

    case("binarizer_default", "Binarizer", {"X": Xn}, {"Y": TensorProto.FLOAT}, {})
    case("binarizer_threshold", "Binarizer", {"X": X}, {"Y": TensorProto.FLOAT}, {"threshold": 0.5})

    words = np.array(["cat", "dog", "bird", "cat", "fish"], dtype=object)
    case("label_encoder_string_to_int64", "LabelEncoder", {"X": words}, {"Y": TensorProto.INT64},
         {"keys_strings": ["bird", "cat", "dog"], "values_int64s": [0, 1, 2]}, ml_opset=2)
    case("label_encoder_string_to_int64_default", "LabelEncoder", {"X": words}, {"Y": TensorProto.INT64},
         {"keys_strings": ["bird", "cat", "dog"], "values_int64s": [0, 1, 2], "default_int64": 42}, ml_opset=2)
    case("label_encoder_int64_to_string", "LabelEncoder", {"X": np.array([0, 2, 5, 1], dtype=np.int64)},
         {"Y": TensorProto.STRING}, {"keys_int64s": [0, 1, 2], "values_strings": ["a", "b", "c"]}, ml_opset=2)
    case("label_encoder_string_to_string", "LabelEncoder", {"X": words}, {"Y": TensorProto.STRING},
         {"keys_strings": ["cat", "dog"], "values_strings": ["feline", "canine"], "default_string": "other"},
         ml_opset=2)
    case("label_encoder_float_to_string", "LabelEncoder",
         {"X": np.array([0.5, 1.0, float("nan"), 2.0], dtype=np.float32)}, {"Y": TensorProto.STRING},
         {"keys_floats": [0.5, 1.0, float("nan")], "values_strings": ["half", "one", "missing"]}, ml_opset=2)
    case("label_encoder_float_to_int64", "LabelEncoder",
         {"X": np.array([[0.5, 3.0], [1.0, 0.5]], dtype=np.float32)}, {"Y": TensorProto.INT64},
         {"keys_floats": [0.5, 1.0], "values_int64s": [10, 20]}, ml_opset=2)
    case("label_encoder_string_to_float", "LabelEncoder", {"X": words}, {"Y": TensorProto.FLOAT},
         {"keys_strings": ["cat", "dog"], "values_floats": [1.5, 2.5]}, ml_opset=2)
    case("label_encoder_mismatched_lengths", "LabelEncoder", {"X": words}, {"Y": TensorProto.INT64},
         {"keys_strings": ["cat", "dog"], "values_int64s": [1]}, ml_opset=2)

    a = rng.uniform(-1, 1, size=(5, 2)).astype(np.float32)
    b = rng.randint(0, 9, size=(5, 3)).astype(np.int64)
    c = rng.uniform(-1, 1, size=(5, 4)).astype(np.float64)
    case("feature_vectorizer_floats", "FeatureVectorizer", {"a": a, "c": c.astype(np.float32)},
         {"Y": TensorProto.FLOAT}, {"inputdimensions": [2, 4]})
    case("feature_vectorizer_int64", "FeatureVectorizer", {"b": b, "b2": b[:, :2]}, {"Y": TensorProto.FLOAT},
         {"inputdimensions": [3, 2]})
    case("feature_vectorizer_double", "FeatureVectorizer", {"c": c, "c2": c[:, :1]}, {"Y": TensorProto.FLOAT},
         {"inputdimensions": [4, 1]})
    case("feature_vectorizer_pad_and_truncate", "FeatureVectorizer", {"a": a, "c": c.astype(np.float32)},
         {"Y": TensorProto.FLOAT}, {"inputdimensions": [3, 2]})
    case("feature_vectorizer_int32", "FeatureVectorizer", {"b": b.astype(np.int32)}, {"Y": TensorProto.FLOAT},
         {"inputdimensions": [3]})

    X4 = rng.uniform(-1, 1, size=(4, 5)).astype(np.float32)
    for name, idx in {"scalar": np.array(2, dtype=np.int64), "vector": np.array([4, 0, 4], dtype=np.int64),
                      "one": np.array([1], dtype=np.int64)}.items():
        node_in = {"X": X4}
        extra = [helper.make_node("Constant", [], ["idx"], value=helper.make_tensor(
            "idx", TensorProto.INT64, list(idx.shape), idx.reshape(-1).tolist()))]
        array_feature_extractor(f"array_feature_extractor_{name}", node_in, extra)
    array_feature_extractor("array_feature_extractor_strings",
                            {"X": np.array([["a", "b", "c"], ["d", "e", "f"]], dtype=object)},
                            [helper.make_node("Constant", [], ["idx"], value=helper.make_tensor(
                                "idx", TensorProto.INT64, [2], [2, 0]))])
    array_feature_extractor("array_feature_extractor_out_of_range", {"X": X4},
                            [helper.make_node("Constant", [], ["idx"], value=helper.make_tensor(
                                "idx", TensorProto.INT64, [1], [5]))])

    for norm in ["MAX", "L1", "L2"]:
        case(f"normalizer_{norm.lower()}", "Normalizer", {"X": X}, {"Y": TensorProto.FLOAT}, {"norm": norm})


def array_feature_extractor(name, inputs, extra):
    node = helper.make_node("ArrayFeatureExtractor", [*inputs, "idx"], ["Y"], domain=ML, name=name)
    elem = ELEM[next(iter(inputs.values())).dtype]
    graph = helper.make_graph(
        [*extra, node], name,
        [helper.make_tensor_value_info(k, ELEM[v.dtype], [None, v.shape[1]]) for k, v in inputs.items()],
        [helper.make_tensor_value_info("Y", elem, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)])
    model.ir_version = 8
    data = model.SerializeToString()
    (OUT / f"{name}.onnx").write_bytes(data)
    result = {"inputs": [tensor(k, v) for k, v in inputs.items()]}
    try:
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        result["outputs"] = [tensor("Y", sess.run(None, inputs)[0])]
    except Exception as e:  # noqa: BLE001
        result["error"] = str(e).splitlines()[0][:300]
    (OUT / f"{name}.json").write_text(json.dumps(result, separators=(",", ":")) + "\n")
    print(f"ops/{name}: {'error' if 'error' in result else 'ok'}")


def zipmap():
    """ZipMap anywhere but at an output is refused; a trailing one is served as its tensor."""
    X = np.array([[0.2, 0.8], [0.6, 0.4]], dtype=np.float32)
    zm = helper.make_node("ZipMap", ["X"], ["Z"], domain=ML, classlabels_int64s=[0, 1], name="zipmap")
    ident = helper.make_node("Identity", ["Z"], ["Y"], name="after_zipmap")
    seq_map = helper.make_sequence_type_proto(helper.make_map_type_proto(
        TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, [])))
    graph = helper.make_graph([zm, ident], "zipmap_not_last",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                              [helper.make_value_info("Y", seq_map)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)])
    model.ir_version = 8
    (OUT / "zipmap_not_last.onnx").write_bytes(model.SerializeToString())
    graph = helper.make_graph([zm], "zipmap_last",
                              [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
                              [helper.make_value_info("Z", seq_map)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, 3)])
    model.ir_version = 8
    (OUT / "zipmap_last.onnx").write_bytes(model.SerializeToString())
    print("ops/zipmap_last, ops/zipmap_not_last")


def build():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    rng = np.random.RandomState(7)
    trees(rng)
    svm(rng)
    linear(rng)
    encoders(rng)
    zipmap()
