"""HTTP calls to `edgembed serve` with the standard library's client, and checks of its
OpenAI-shaped answers (imported by name by the server tests)."""

from __future__ import annotations

import http.client
import json

import numpy as np


def call(port: int, method: str, path: str, body: object = None,
         headers: dict[str, str] | None = None) -> tuple[int, object, http.client.HTTPResponse]:
    """One request on a fresh connection; the body is JSON-encoded unless it is bytes."""
    if body is not None and not isinstance(body, (bytes, str)) and not hasattr(body, "__next__"):
        body = json.dumps(body)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None, response
    finally:
        conn.close()


def embed(port: int, **body: object) -> tuple[int, dict]:
    status, data, _ = call(port, "POST", "/v1/embeddings", body)
    return status, data


def assert_error(status: int, data: object, expected_status: int, *words: str) -> dict:
    assert status == expected_status, str(data)[:1000]
    assert isinstance(data, dict) and set(data) == {"error"}
    error = data["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == ("server_error" if status >= 500 else "invalid_request_error")
    for word in words:
        assert word in error["message"], error["message"]
    return error


def vectors_of(data: dict) -> np.ndarray:
    rows = sorted(data["data"], key=lambda row: row["index"])
    return np.asarray([row["embedding"] for row in rows], dtype=np.float32)
