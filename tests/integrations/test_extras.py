"""Each adapter needs only its own extra, and says which one when its framework is missing;
`import edgembed` loads none of them."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ADAPTERS = [("edgembed.integrations.langchain", "langchain_core", "langchain"),
            ("edgembed.integrations.langchain_store", "langchain_core", "langchain"),
            ("edgembed.integrations.llamaindex", "llama_index", "llamaindex"),
            ("edgembed.integrations.mteb", "mteb", "mteb")]


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("module", "framework", "extra"), ADAPTERS)
def test_missing_framework_names_the_extra(module, framework, extra):
    result = run_python(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == {framework!r}:
                    raise ModuleNotFoundError("blocked: " + name, name={framework!r})
        sys.meta_path.insert(0, Block())
        try:
            import {module}
        except ImportError as exc:
            print(exc.name)
            print(exc)
    """)
    assert result.returncode == 0, result.stderr
    name, message = result.stdout.strip().splitlines()
    assert name == framework
    assert message.startswith("edgembed.integrations.")  # the store names the embeddings
    assert message.endswith(f" needs {framework}, which is not installed: "
                            f"pip install 'edgembed[{extra}]'")


def test_import_edgembed_loads_no_integration():
    result = run_python("""
        import sys, edgembed
        edgembed.Encoder.load().encode(["hello"])
        loaded = [name for name in sys.modules if name.startswith("edgembed.integrations")
                  or name.split(".")[0] in ("langchain_core", "llama_index", "mteb")]
        assert not loaded, loaded
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
