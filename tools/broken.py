"""Models that must fail to load, for the tests that check a bad model fails alone.

Imported by tools/make_models.py (`python3 tools/make_models.py broken`) inside the pinned venv. It
writes `tests/fixtures/unsupported_op/model.onnx`: a valid ONNX model (opset 17) whose only node is
`Det`, a standard operator that tract 0.23.9 does not implement. The corrupt model of those tests
is made by the test itself (a truncated copy of models/iris/model.onnx).
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parent.parent


def build():
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2, 2])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N"])
    graph = helper.make_graph([helper.make_node("Det", ["X"], ["Y"], name="det")], "det", [x], [y])
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="wafer tools/broken.py"
    )
    onnx.checker.check_model(model)
    out = ROOT / "tests" / "fixtures" / "unsupported_op"
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.onnx").write_bytes(model.SerializeToString())
