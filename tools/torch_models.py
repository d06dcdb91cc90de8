"""PyTorch models in the model zoo: five small networks, trained for a few seconds on the CPU and
exported with `torch.onnx.export` (the TorchScript exporter, `dynamo=False`, ai.onnx opset 17,
batch axis `N`).

Imported by tools/make_models.py inside tools/.venv-torch (pinned in tools/requirements-torch.txt).
Writes, like tools/zoo.py, under `models/zoo/<name>/`:
  model.onnx   the export
  case.json    the test rows as named v2 tensors, the outputs onnxruntime gives on them, what
               PyTorch gives (under "torch"), and any per-model tolerance with its reason
  README.md    module, dataset, training, versions, sha256 of model.onnx
The data ships with scikit-learn (digits, wine) or is drawn from a seeded numpy generator, so
nothing is downloaded. Seeds are fixed and training runs on one thread, so that regenerating gives
the same bytes.
"""

import contextlib
import hashlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import torch
from sklearn import datasets
from sklearn.model_selection import train_test_split
from torch import nn

from zoo_format import element, ort_outputs, tensor

OPSET = 17
TEST_ROWS = 40
ZOO = Path(__file__).resolve().parent.parent / "models" / "zoo"


def seed(n=0):
    torch.manual_seed(n)
    np.random.seed(n)


def train(model, inputs, y, *, epochs, batch=64, lr=1e-2, seed_=0):
    """Adam on the cross-entropy of the model's first output (logits), in seeded mini-batches."""
    gen = torch.Generator().manual_seed(seed_)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    inputs = [torch.from_numpy(np.ascontiguousarray(x)) for x in inputs]
    y = torch.from_numpy(np.asarray(y, dtype=np.int64))
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            opt.zero_grad()
            logits = model(*(x[idx] for x in inputs))[0]
            loss_fn(logits, y[idx]).backward()
            opt.step()
    model.eval()


def bag_mean_symbolic(length):
    """aten::embedding_bag(mode='mean') over equal-length bags as Gather + ReduceMean.

    The stock TorchScript symbolic exports every EmbeddingBag as a Loop over the bags. With a
    2-D input [N, L] every bag has L tokens, so the mean is a plain Gather, a Reshape to
    [N, L, D] and a ReduceMean over axis 1."""

    def symbolic(g, weight, indices, offsets, scale_grad_by_freq, mode, sparse,
                 per_sample_weights, include_last_offset, padding_idx):
        from torch.onnx import symbolic_helper as sh

        assert sh._maybe_get_const(mode, "i") == 1, "mode='mean' only"
        assert sh._is_none(per_sample_weights), "no per_sample_weights"
        assert not sh._maybe_get_const(include_last_offset, "b"), "no include_last_offset"
        assert sh._is_none(padding_idx) or sh._maybe_get_const(padding_idx, "i") in (None, -1)
        dim = sh._get_tensor_sizes(weight)[1]
        rows = g.op("Gather", weight, indices, axis_i=0)
        shape = g.op("Constant", value_t=torch.tensor([-1, length, dim], dtype=torch.int64))
        bags = g.op("Reshape", rows, shape)
        return g.op("ReduceMean", bags, axes_i=[1], keepdims_i=0), None, None, None

    return symbolic


@contextlib.contextmanager
def embedding_bag_as_gather(length):
    torch.onnx.register_custom_op_symbolic("aten::embedding_bag", bag_mean_symbolic(length), OPSET)
    try:
        yield
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::embedding_bag", OPSET)


def export(model, feeds, output_names):
    """The TorchScript export, with axis 0 of every input and output named `N`."""
    args = tuple(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values())
    names = list(feeds)
    f = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo=True, and says so.
        warnings.simplefilter("ignore", DeprecationWarning)
        # It warns that a GRU exported with a batch other than 1 may fail at other batch sizes;
        # its initial state is built from the input's shape (Shape, ConstantOfShape), so it does not.
        warnings.filterwarnings("ignore", "Exporting a model to ONNX with a batch_size other than 1")
        torch.onnx.export(
            model,
            args,
            f,
            dynamo=False,
            opset_version=OPSET,
            input_names=names,
            output_names=output_names,
            dynamic_axes={n: {0: "N"} for n in names + output_names},
        )
    onx = onnx.load_from_string(f.getvalue())
    onnx.checker.check_model(onx, full_check=True)
    return onx


def op_counts(onx):
    counts = {}
    for n in onx.graph.node:
        key = f"{n.domain or 'ai.onnx'}:{n.op_type}"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def write(name, model, feeds, output_names, description, source, training, *, tolerance=None,
          onx=None):
    """Exports `model` (unless `onx` is given), runs onnxruntime and PyTorch on `feeds` and writes
    the zoo files."""
    model.eval()
    onx = onx or export(model, feeds, output_names)
    assert {o.domain for o in onx.opset_import} == {""}, "ai.onnx only"
    assert all(not n.domain for n in onx.graph.node), "ai.onnx only"
    model_bytes = onx.SerializeToString()
    assert len(model_bytes) < 1 << 20, f"{name}: {len(model_bytes)} bytes"
    out_dir = ZOO / name
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "model.onnx").write_bytes(model_bytes)

    names, values = ort_outputs(onx, feeds)
    assert names == output_names, names
    with torch.no_grad():
        mine = model(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feeds.values()))
    mine = [t.numpy() for t in mine]
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(mine, values))
    case = {
        "model": name,
        "inputs": [tensor(k, v) for k, v in feeds.items()],
        "onnxruntime": [tensor(n, v) for n, v in zip(names, values)],
        "torch": {n: [element(x) for x in v.reshape(-1)] for n, v in zip(names, mine)},
    }
    if tolerance:
        case["tolerance"] = tolerance
    (out_dir / "case.json").write_text(json.dumps(case, separators=(",", ":")) + "\n")

    sha = hashlib.sha256(model_bytes).hexdigest()
    counts = op_counts(onx)
    ops = sorted(counts)
    labels = np.argmax(values[-1], axis=1)
    module = "\n".join("    " + line for line in repr(model).splitlines())
    (out_dir / "README.md").write_text(
        f"""# zoo/{name}

{description}

- source: {source}
- training: {training}
- inputs: {", ".join(f"`{t['name']}` {t['datatype']} {t['shape'][1:]}" for t in case["inputs"])}
- outputs: {", ".join(f"`{t['name']}` {t['datatype']} {t['shape'][1:]}" for t in case["onnxruntime"])}
- ONNX operators: {", ".join(ops)}
- exported with `torch.onnx.export(dynamo=False, opset_version={OPSET})`, axis 0 of every input and output named `N`
- test set: {TEST_ROWS} held-back rows; model.onnx sha256 `{sha}`
- versions: torch {torch.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}, numpy {np.__version__}, scikit-learn {sklearn.__version__}

The module:

{module}

Regenerate with `python3 tools/make_models.py torch` (pinned versions in `tools/requirements-torch.txt`).
"""
    )
    print(f"zoo/{name}: {len(model_bytes)} bytes, torch vs onnxruntime max |diff| {worst:.2e}, "
          f"argmax {np.bincount(labels).tolist()}")
    print("   ", ", ".join(f"{k.split(':')[1]} {v}" for k, v in counts.items()))
    return labels


def accuracy(labels, y):
    return f"{int(np.sum(labels == y))}/{len(y)} test rows right"


# The models. Each returns its logits first (train() minimizes their cross-entropy), then the
# probabilities, or the probabilities alone: forward returns a tuple either way.


class MLP(nn.Module):
    """Standardizes with the training set's mean and deviation, then two Linear layers."""

    def __init__(self, mean, std, hidden, classes):
        super().__init__()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.hidden = nn.Linear(len(mean), hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        logits = self.out(torch.relu(self.hidden((x - self.mean) / self.std)))
        return logits, torch.softmax(logits, dim=1)


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
        )
        self.out = nn.Linear(16 * 4 * 4, 10)

    def forward(self, images):
        logits = self.out(self.features(images / 16.0))
        return logits, torch.softmax(logits, dim=1)


class SequenceGRU(nn.Module):
    def __init__(self, features, hidden, classes):
        super().__init__()
        self.gru = nn.GRU(features, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, sequences):
        _, h = self.gru(sequences)
        logits = self.out(h[-1])
        return logits, torch.softmax(logits, dim=1)


class Encoder(nn.Module):
    def __init__(self, d_model, heads, classes):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=2 * d_model,
                                                  dropout=0.0, batch_first=True)
        self.out = nn.Linear(d_model, classes)

    def forward(self, x):
        logits = self.out(self.encoder(x).mean(dim=1))
        return logits, torch.softmax(logits, dim=1)


class BagClassifier(nn.Module):
    def __init__(self, vocab, dim, classes):
        super().__init__()
        self.bag = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.out = nn.Linear(dim, classes)

    def forward(self, tokens):
        logits = self.out(self.bag(tokens))
        return logits, torch.softmax(logits, dim=1)


def split(X, y):
    return train_test_split(X, y, test_size=TEST_ROWS, random_state=0, stratify=y)


def mlp():
    wine = datasets.load_wine()
    X_train, X_test, y_train, y_test = split(wine.data.astype(np.float32), wine.target)
    seed(0)
    model = MLP(X_train.mean(0), X_train.std(0), 16, 3)
    train(model, [X_train], y_train, epochs=60, batch=32)
    labels = write(
        "torch_mlp", model, {"X": X_test}, ["logits", "probabilities"],
        "A PyTorch MLP (standardize, Linear 13-16, ReLU, Linear 16-3) on the wine measurements, "
        "with two outputs: logits and softmax probabilities.",
        "sklearn.datasets.load_wine",
        "Adam lr 0.01, 60 epochs, batches of 32, seed 0",
    )
    print("   ", accuracy(labels, y_test))


def cnn_digits():
    digits = datasets.load_digits()
    images = digits.images.astype(np.float32)[:, None, :, :]
    X_train, X_test, y_train, y_test = split(images, digits.target)
    seed(0)
    model = DigitsCNN()
    train(model, [X_train], y_train, epochs=8)
    labels = write(
        "torch_cnn_digits", model, {"images": X_test}, ["logits", "probabilities"],
        "A PyTorch 2-D CNN on the 8x8 digit images [N, 1, 8, 8] (pixels 0-16): two 3x3 Conv2d "
        "with ReLU, a 2x2 MaxPool, Flatten and a Linear head; logits and softmax probabilities.",
        "sklearn.datasets.load_digits (images)",
        "Adam lr 0.01, 8 epochs, batches of 64, seed 0",
    )
    print("   ", accuracy(labels, y_test))


def gru():
    rng = np.random.RandomState(5)
    n, steps, features = 1000, 12, 3
    X = rng.randn(n, steps, features).astype(np.float32)
    # The class: which feature, weighted towards the recent steps, has grown the most.
    weights = np.linspace(0.2, 1.0, steps, dtype=np.float32)
    y = np.argmax(np.einsum("ntf,t->nf", X, weights), axis=1)
    X_train, X_test, y_train, y_test = split(X, y)
    seed(0)
    model = SequenceGRU(features, 16, 3)
    train(model, [X_train], y_train, epochs=15)
    labels = write(
        "torch_gru", model, {"sequences": X_test}, ["logits", "probabilities"],
        "A PyTorch GRU (batch_first, 3 features, hidden 16) over sequences [N, 12, 3], with a "
        "Linear head on the last hidden state; logits and softmax probabilities.",
        "synthetic (numpy RandomState(5)): 1000 Gaussian sequences of 12 steps; the class is the "
        "feature with the largest sum, weighted from 0.2 (first step) to 1 (last)",
        "Adam lr 0.01, 15 epochs, batches of 64, seed 0",
    )
    print("   ", accuracy(labels, y_test))


def transformer():
    rng = np.random.RandomState(6)
    n, steps, d = 1000, 8, 16
    X = rng.randn(n, steps, d).astype(np.float32)
    # The class: which of 3 fixed directions the tokens point along most, on average.
    directions = rng.randn(d, 3).astype(np.float32)
    y = np.argmax((X @ directions).mean(axis=1), axis=1)
    X_train, X_test, y_train, y_test = split(X, y)
    seed(0)
    model = Encoder(d, 2, 3)
    train(model, [X_train], y_train, epochs=10, lr=3e-3)
    labels = write(
        "torch_transformer", model, {"X": X_test}, ["logits", "probabilities"],
        "A PyTorch nn.TransformerEncoderLayer (d_model 16, 2 heads, feed-forward 32, batch_first) "
        "over [N, 8, 16], mean-pooled over the steps into a Linear head; logits and softmax "
        "probabilities.",
        "synthetic (numpy RandomState(6)): 1000 Gaussian sequences of 8 16-d tokens; the class "
        "is which of 3 fixed random directions the tokens point along most, on average",
        "Adam lr 0.003, 10 epochs, batches of 64, seed 0",
    )
    print("   ", accuracy(labels, y_test))


def embedding_bag():
    rng = np.random.RandomState(7)
    n, length, vocab, classes = 1200, 12, 50, 3
    # Tokens 0-9 are words of class 0, 10-19 of class 1, 20-29 of class 2, 30-49 any class's.
    y = rng.randint(0, classes, n)
    tokens = np.empty((n, length), dtype=np.int64)
    for i, c in enumerate(y):
        other = rng.choice([k for k in range(classes) if k != c])
        row = np.r_[rng.randint(0, 10, 4) + 10 * c, rng.randint(0, 10, 2) + 10 * other,
                    rng.randint(30, vocab, length - 6)]
        tokens[i] = rng.permutation(row)
    X_train, X_test, y_train, y_test = split(tokens, y)
    seed(0)
    model = BagClassifier(vocab, 8, classes)
    train(model, [X_train], y_train, epochs=10)
    model.eval()
    with embedding_bag_as_gather(length):
        onx = export(model, {"tokens": X_test}, ["logits", "probabilities"])
    labels = write(
        "torch_embedding_bag", model, {"tokens": X_test}, ["logits", "probabilities"],
        "A PyTorch text classifier: nn.EmbeddingBag(50, 8, mode='mean') over INT64 token ids in "
        "bags of 12 [N, 12], then a Linear head; logits and softmax probabilities. Exported "
        "with a custom symbolic for aten::embedding_bag (Gather, Reshape, ReduceMean) instead of "
        "the stock one, which makes every EmbeddingBag a Loop over the bags.",
        "synthetic (numpy RandomState(7)): 1200 bags of 12 tokens, 4 words of the class, 2 of "
        "another class and 6 of no class, shuffled",
        "Adam lr 0.01, 10 epochs, batches of 64, seed 0",
        onx=onx,
    )
    print("   ", accuracy(labels, y_test))


def build():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    mlp()
    cnn_digits()
    gru()
    transformer()
    embedding_bag()


if __name__ == "__main__":
    build()
