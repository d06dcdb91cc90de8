"""The zoo's `case.json` format, shared by tools/zoo.py (scikit-learn, tools/.venv) and
tools/torch_models.py (PyTorch, tools/.venv-torch): needs only numpy and onnxruntime.

Tensors are v2-style: name, datatype, shape, flat data (NaN as null, infinities as strings).
"""

import numpy as np
import onnxruntime as ort

DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.bool_): "BOOL",
}


def datatype(arr):
    if arr.dtype.kind in "OUS":
        return "BYTES"
    return DATATYPES[arr.dtype]


def element(v):
    if isinstance(v, (str, bytes, np.str_)):
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (np.integer, int)):
        return int(v)
    f = float(v)
    if np.isinf(f):
        return "Infinity" if f > 0 else "-Infinity"
    return None if np.isnan(f) else f


def tensor(name, arr):
    """A v2-style tensor: name, datatype, shape, flat data (NaN as null, infinities as strings)."""
    arr = np.asarray(arr)
    return {
        "name": name,
        "datatype": datatype(arr),
        "shape": list(arr.shape),
        "data": [element(v) for v in arr.reshape(-1)],
    }


def ort_outputs(onx, feeds):
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return names, sess.run(None, feeds)
