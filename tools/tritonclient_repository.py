#!/usr/bin/env python3
"""Drives Triton's model repository extension on a v2 server with the real `tritonclient[http]`:
the index, unload and load of one model, with and without the bearer token. Prints what it saw
as JSON. Run by tests/all/operations.rs with tools/.venv-client's Python:

    tritonclient_repository.py URL MODEL TOKEN
"""

import json
import sys

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def main():
    url, model, token = sys.argv[1:4]
    client = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    auth = {"Authorization": f"Bearer {token}"}
    seen = {}
    try:
        client.get_model_repository_index()
        seen["without_token"] = "accepted"
    except InferenceServerException as e:
        seen["without_token"] = str(e)
    seen["index"] = client.get_model_repository_index(headers=auth)
    client.unload_model(model, headers=auth)
    seen["ready_after_unload"] = client.is_model_ready(model)
    client.load_model(model, headers=auth)
    seen["ready_after_load"] = client.is_model_ready(model)
    seen["index_after"] = client.get_model_repository_index(headers=auth)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
