#!/usr/bin/env python3
"""Sends one zoo case to a v2 server with the real `tritonclient[http]`, as users do, and prints
the outputs as JSON. Run by tests/all/tritonclient.rs with tools/.venv-client's Python:

    tritonclient_infer.py URL MODEL CASE_JSON

It uses the client's defaults: inputs as binary tensor data (`set_data_from_numpy`), and no
requested outputs, which asks for every output as binary data.
"""

import json
import sys

import numpy as np
import tritonclient.http as httpclient

DTYPES = {"FP32": np.float32, "FP64": np.float64, "INT64": np.int64, "BYTES": np.object_}


def main():
    url, model, case_path = sys.argv[1:4]
    case = json.load(open(case_path))
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    assert client.is_server_live(), "server not live"
    assert client.is_model_ready(model), "model not ready"
    metadata = client.get_model_metadata(model)
    inputs = []
    for t in case["inputs"]:
        data = [float("nan") if v is None else v for v in t["data"]]
        array = np.array(data, dtype=DTYPES[t["datatype"]]).reshape(t["shape"])
        inp = httpclient.InferInput(t["name"], list(array.shape), t["datatype"])
        inp.set_data_from_numpy(array)
        inputs.append(inp)
    result = client.infer(model, inputs)
    outputs = []
    for o in metadata["outputs"]:
        array = result.as_numpy(o["name"])
        response = result.get_output(o["name"])
        data = [v.decode() if isinstance(v, bytes) else v.item() for v in array.reshape(-1)]
        data = [None if isinstance(v, float) and v != v else v for v in data]
        binary = "binary_data_size" in response.get("parameters", {})
        outputs.append({"name": o["name"], "datatype": response["datatype"],
                        "shape": list(array.shape), "data": data, "binary": binary})
    print(json.dumps({"outputs": outputs}))


if __name__ == "__main__":
    main()
