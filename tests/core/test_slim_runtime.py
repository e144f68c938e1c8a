"""The runtime must import and run with no torch, transformers or optimum anywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "optimum", "sentence_transformers", "onnx")


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120)


def test_encode_loads_no_heavy_module():
    result = run_python(f"""
        import sys, edgembed
        vectors = edgembed.Encoder.load().encode(["hello", "world"])
        assert vectors.shape == (2, 384), vectors.shape
        loaded = [name for name in {HEAVY!r} if name in sys.modules]
        assert not loaded, loaded
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_runtime_works_when_heavy_packages_cannot_be_imported():
    """Simulates a slim install: any import of a heavy package fails."""
    result = run_python(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {HEAVY!r}:
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import edgembed
        from edgembed import cli
        print(edgembed.Encoder.load().encode(["offline"]).shape)
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1, 384)"


def test_import_edgembed_leaves_the_index_stack_unloaded():
    """`import edgembed` (and encoding) loads neither usearch, SQLite nor tqdm: `Index` and
    `Hit` load them on first use."""
    result = run_python("""
        import sys, edgembed
        edgembed.Encoder.load().encode(["hello"])
        unloaded = ("usearch", "sqlite3", "tqdm", "edgembed.index", "edgembed.serve",
                    "edgembed.eval")
        loaded = [name for name in unloaded if name in sys.modules]
        assert not loaded, loaded
        from edgembed import Hit, Index
        assert Index.__module__ == "edgembed.index.index" and "usearch" in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
