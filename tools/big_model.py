"""A model of over 100 MB for the wasi-nn memory benchmark (tools/bench_nn.sh).

Run with the pinned onnx and numpy of tools/.venv-nodes: `python tools/big_model.py OUT_DIR`
writes OUT_DIR/big/model.onnx, an MLP of seeded random weights (4096 -> 4096 -> 2560, ReLU,
softmax): 104 MiB of FP32 weights. Nothing is committed: the file is made where it is used.
"""

import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper, save

IN, HIDDEN, OUT = 4096, 4096, 2560


def main() -> None:
    out = Path(sys.argv[1]) / "big"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((IN, HIDDEN)) / np.sqrt(IN)).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, OUT)) / np.sqrt(HIDDEN)).astype(np.float32)
    b2 = np.zeros(OUT, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W1"], ["h"]),
            helper.make_node("Relu", ["h"], ["r"]),
            helper.make_node("MatMul", ["r", "W2"], ["z"]),
            helper.make_node("Add", ["z", "B2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "big",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", IN])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", OUT])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2"),
         numpy_helper.from_array(b2, "B2")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, out / "model.onnx")
    print(f"{out / 'model.onnx'}: {(out / 'model.onnx').stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
