"""`/v1/search` modes, filters and snippets, `/v1/facets`, `/v1/file` (indexed files only)
and the page's static files, against a server on loopback."""

from __future__ import annotations

import http.client
import json
import shutil

import pytest

pytest.importorskip("starlette")

from edgembed import Index, default_package_path  # noqa: E402
from edgembed.index import index_paths  # noqa: E402
from edgembed.serve.app import create_app, running  # noqa: E402

SAMPLES = default_package_path().parent / "samples"


def get(port: int, method: str, path: str, body: object = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body))
        response = conn.getresponse()
        return response.status, response.read(), response
    finally:
        conn.close()


def search(port: int, **body) -> tuple[int, dict]:
    status, raw, _ = get(port, "POST", "/v1/search", body)
    return status, json.loads(raw)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    target = tmp_path_factory.mktemp("files") / "files"
    (target / "notes").mkdir(parents=True)
    shutil.copy(SAMPLES / "sourdough-baking.md", target / "notes")
    shutil.copy(SAMPLES / "water-cycle.txt", target)
    return target


@pytest.fixture(scope="module")
def port(folder, tmp_path_factory, default_encoder):
    path = tmp_path_factory.mktemp("index") / "index"
    index = Index.create(path, default_encoder)
    index_paths(index, [folder])
    index.close()
    reader = Index.open(path, encoder=default_encoder, view=True)
    with running(create_app(default_encoder, reader)) as url:
        yield int(url.rsplit(":", 1)[1])
    reader.close()


def test_modes_snippets_and_filters(port, folder):
    for mode in ("hybrid", "dense", "keyword"):
        status, data = search(port, query="sourdough starter", k=2, mode=mode)
        assert status == 200, data
        assert data["data"][0]["hits"][0]["metadata"]["file"].endswith("sourdough-baking.md")
    status, data = search(port, query="sourdough starter", k=1, snippets=True)
    segments = data["data"][0]["hits"][0]["snippet"]
    assert [s.lower() for s in segments[1::2]] and \
        {s.lower() for s in segments[1::2]} <= {"sourdough", "starter"}
    _, only_txt = search(port, query="sourdough starter", k=5, file_types=[".txt"])
    assert {h["metadata"]["file"] for h in only_txt["data"][0]["hits"]} == \
        {str(folder / "water-cycle.txt")}
    _, only_notes = search(port, query="rain", k=5, folder=str(folder / "notes"))
    assert all("/notes/" in h["metadata"]["file"] for h in only_notes["data"][0]["hits"])
    _, usage = search(port, query="rain", mode="keyword")
    assert usage["usage"]["prompt_tokens"] == 0  # keyword search encodes nothing


def test_bad_search_fields_and_keyword_syntax(port):
    status, data = search(port, query="rain", mode="fuzzy")
    assert status == 400 and data["error"]["param"] == "mode"
    status, data = search(port, query="rain", snippets="yes")
    assert status == 400 and data["error"]["param"] == "snippets"
    status, data = search(port, query='rain AND (', mode="keyword", keyword_syntax=True)
    assert status == 400 and data["error"]["code"] == "invalid_query"
    status, data = search(port, query='rain AND (')  # plain words: never an error
    assert status == 200 and data["data"][0]["hits"]


def test_facets_files_and_page(port, folder):
    status, raw, _ = get(port, "GET", "/v1/facets")
    facets = json.loads(raw)
    assert status == 200 and facets["file_types"] == [".md", ".txt"]
    assert facets["folders"] == [str(folder), str(folder / "notes")]
    status, raw, response = get(port, "GET", f"/v1/file?path={folder / 'water-cycle.txt'}")
    assert status == 200 and raw == (folder / "water-cycle.txt").read_bytes()
    assert response.getheader("Content-Type").startswith("text/plain")
    assert "sandbox" in response.getheader("Content-Security-Policy")
    for outside in ("/etc/passwd", str(folder), str(folder / "nope.txt"), ""):
        status, raw, _ = get(port, "GET", f"/v1/file?path={outside}")
        assert status == 404 and json.loads(raw)["error"]["code"] == "no_file"
    status, raw, response = get(port, "GET", "/")
    assert status == 200 and b'<label for="query">' in raw
    assert "default-src 'none'" in response.getheader("Content-Security-Policy")
    for name in ("search.js", "search.css"):
        status, raw, _ = get(port, "GET", f"/static/{name}")
        assert status == 200 and raw


def test_no_page_without_an_index(default_encoder):
    with running(create_app(default_encoder)) as url:
        status, raw, _ = get(int(url.rsplit(":", 1)[1]), "GET", "/")
        assert status == 404 and json.loads(raw)["error"]["code"] == "no_index"


def test_an_index_model_is_loaded_with_the_chosen_threads_and_passes(tmp_path, default_encoder):
    """Without --model the server loads the index's own package, with --threads and --passes
    applied to it (not the package's defaults)."""
    from edgembed.serve.app import load

    with Index.create(tmp_path / "index", default_encoder) as built:
        built.add(["Water boils at 100 degrees Celsius.", "Bread needs a starter."])
    for threads, passes in ((1, None), (2, False), (None, None)):
        encoder, index = load(None, str(tmp_path / "index"), threads=threads,
                              parallel_passes=passes)
        try:
            assert encoder.path == default_encoder.path
            assert encoder.threads == (threads or default_encoder.threads)
            assert encoder.parallel_passes is (passes if passes is not None
                                               else encoder.threads > 1)
            assert index.search("when does water boil", k=1)[0].text.startswith("Water")
        finally:
            index.close()
