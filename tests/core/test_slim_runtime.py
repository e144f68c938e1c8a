"""The runtime must import and run with no torch, transformers or optimum anywhere."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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
    """`import edgembed` (and encoding) loads neither usearch, simsimd, SQLite nor tqdm: `Index` and
    `Hit` load them on first use."""
    result = run_python("""
        import sys, edgembed
        edgembed.Encoder.load().encode(["hello"])
        unloaded = ("usearch", "simsimd", "sqlite3", "tqdm", "edgembed.index", "edgembed.serve",
                    "edgembed.eval")
        loaded = [name for name in unloaded if name in sys.modules]
        assert not loaded, loaded
        from edgembed import Hit, Index
        assert Index.__module__ == "edgembed.index.index" and "usearch" in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


OPTIONAL = ("ray", "pyarrow", "lancedb", "pandas")


def test_optional_extras_load_only_when_used():
    """The command line and the index load neither Ray, pyarrow nor LanceDB until a command
    that needs them runs."""
    result = run_python(f"""
        import sys, edgembed
        from edgembed import cli, Index
        from edgembed.index.shards import ShardedIndex
        cli.build_parser().parse_args(["embed", "x.jsonl", "--ray", "-o", "out"])
        loaded = [name for name in {OPTIONAL!r} if name in sys.modules]
        assert not loaded, loaded
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.parametrize("blocked,argv,extra", [
    ("ray", ["embed", "{tmp}/in.jsonl", "--ray", "-o", "{tmp}/out"], "ray"),
    ("pyarrow", ["shards", "{tmp}", "--out", "{tmp}/shards"], "ray"),
    ("lancedb", ["export-index", "{tmp}", "--to", "lancedb:{tmp}/db"], "lancedb"),
])
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, argv, extra):
    (tmp_path / "in.jsonl").write_text('{"id": 1, "text": "hello"}\\n')
    args = [a.format(tmp=tmp_path) for a in argv]
    result = run_python(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == {blocked!r}:
                    raise ImportError("blocked: " + name, name=name)
        sys.meta_path.insert(0, Block())
        from edgembed.cli import main
        sys.exit(main({args!r}))
    """)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"pip install 'edgembed[{extra}]'" in lines[0], result.stderr
