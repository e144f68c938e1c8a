"""Every ```python block of README.md and docs/**/*.md runs, each in a fresh interpreter
with the network cut off (example_runner.py), in an empty working directory: the docs
cannot rot. An example whose framework is not installed is skipped, naming it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from example_runner import BLOCKED, MISSING, MISSING_EXIT

ROOT = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("example_runner.py")
FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# the extra that brings each framework an example may import
EXTRAS = {"langchain_core": "edgembed[langchain]", "llama_index": "edgembed[llamaindex]",
          "mteb": "edgembed[mteb]", "datasets": "edgembed[mteb]",
          "starlette": "edgembed[serve]", "uvicorn": "edgembed[serve]",
          "openai": "openai", "langchain_openai": "langchain-openai",
          "ray": "edgembed[ray]", "pyarrow": "edgembed[ray]", "lancedb": "edgembed[lancedb]",
          "openvino": "edgembed[openvino]"}


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(line of the opening fence, code) of every python block in a Markdown file."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, match.start()) + 1, match.group(1))
            for match in FENCE.finditer(text)]


def examples() -> list[tuple[str, str]]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return [(f"{path.relative_to(ROOT)}:{line}", code)
            for path in files for line, code in python_blocks(path)]


def run_example(where: str, code: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUNNER), where], input=code, text=True,
                          capture_output=True, cwd=cwd, timeout=600)


EXAMPLES = examples()


def test_the_docs_have_examples_for_every_integration():
    pages = {where.split(":")[0] for where, _ in EXAMPLES}
    for name in ("langchain", "vector-store", "llamaindex", "openai", "mteb",
                 "sentence-transformers"):
        assert f"docs/integrations/{name}.md" in pages, name
    assert len(EXAMPLES) >= 14


@pytest.mark.parametrize(("where", "code"), EXAMPLES, ids=[where for where, _ in EXAMPLES])
def test_example_runs(where, code, tmp_path):
    result = run_example(where, code, tmp_path)
    assert BLOCKED not in result.stderr, result.stderr[-3000:]
    if result.returncode == MISSING_EXIT and MISSING in result.stderr:
        package = result.stderr.split(MISSING, 1)[1].split(":", 1)[0].strip()
        pytest.skip(f"{where} needs {package}: pip install '{EXTRAS.get(package, package)}'")
    assert result.returncode == 0, f"{where} failed:\n{result.stderr[-3000:]}"


def test_runner_blocks_the_network_and_reports_it(tmp_path):
    """The guard itself: a connection out fails and is reported even if swallowed, while
    loopback stays open (the OpenAI examples serve on 127.0.0.1)."""
    code = """
import socket
try:
    socket.socket().connect(("192.0.2.1", 80))
except OSError:
    pass
server = socket.create_server(("127.0.0.1", 0))
socket.create_connection(server.getsockname(), timeout=5).close()
"""
    result = run_example("guard-check", code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"{BLOCKED} ('192.0.2.1', 80)" in result.stderr
    for call in ("getaddrinfo('example.com', 443)", "gethostbyname('example.com')"):
        looked_up = run_example("lookup-check", f"import socket\nsocket.{call}\n", tmp_path)
        assert looked_up.returncode != 0 and f"{BLOCKED} 'example.com'" in looked_up.stderr


def test_runner_skips_only_missing_packages(tmp_path):
    missing = run_example("m", "import edgembed_no_such_package\n", tmp_path)
    assert missing.returncode == MISSING_EXIT
    broken = run_example("b", "from edgembed import no_such_name\n", tmp_path)
    assert broken.returncode == 1 and MISSING not in broken.stderr
