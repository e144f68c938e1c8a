"""The int8 package computes the same on AVX2-only and AVX-512 VNNI CPUs.

AVX2 multiplies uint8 × int8 with `vpmaddubsw`, which adds two neighbouring products in a
saturating int16; VNNI's `vpdpbusd` does not saturate. The per-token weights keep every
pair within 255 × 128 < 32768, so both compute the same integers. These tests run Python
under `qemu-x86_64 -cpu Haswell` (an emulated AVX2-only CPU, from Debian's qemu-user) and
compare with this machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import cosines, cpu_note
from edgembed import default_package_path

QEMU = shutil.which("qemu-x86_64")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(QEMU is None, reason="needs qemu-x86_64 to emulate an AVX2-only CPU: "
                                            "apt-get install qemu-user"),
]

INTEGER_CHECK = textwrap.dedent("""
    import sys
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from edgembed.session import create_session
    sys.path.insert(0, {exporter!r})
    from per_token import pair_limited_int8

    rng = np.random.default_rng(0)
    weight = rng.standard_normal((384, 64))
    weight[::2] *= 9  # large neighbours everywhere: the pair limit binds
    limited, _ = pair_limited_int8(weight)
    raw = np.full((384, 64), 127, np.int8)  # every pair at 254: saturates on AVX2
    codes = rng.integers(0, 256, (16, 384)).astype(np.uint8)
    codes[0] = 255
    for name, q in (("limited", limited), ("raw", raw)):
        graph = helper.make_graph(
            [helper.make_node("MatMulInteger", ["a", "w", "zp"], ["y"])], "g",
            [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, 384])],
            [helper.make_tensor_value_info("y", TensorProto.INT32, [None, 64])],
            [numpy_helper.from_array(q, "w"),
             numpy_helper.from_array(np.array(128, np.uint8), "zp")])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        got = create_session(model.SerializeToString(), threads=1).run(None, {{"a": codes}})[0]
        exact = (codes.astype(np.int64) - 128) @ q.astype(np.int64)
        print(name, int((got != exact).sum()))
""")

ENCODE = textwrap.dedent("""
    import sys
    import numpy as np
    from edgembed import Encoder
    texts = [line for line in open(sys.argv[1], encoding="utf-8").read().splitlines() if line]
    np.save(sys.argv[2], Encoder.load(threads=1).encode(texts[:24]))
""")


def _emulated(script: str, *args: str) -> str:
    result = subprocess.run([QEMU, "-cpu", "Haswell", sys.executable, "-c", script, *args],
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _exporter_dir() -> str:
    import edgembed.export.per_token as per_token

    return str(Path(per_token.__file__).parent)


def test_emulated_cpu_is_avx2_and_pair_limited_weights_are_exact():
    """Negative control first: unlimited weights lose products to saturation under the
    emulated AVX2 CPU (so the emulation really runs the AVX2 kernel); limited ones are exact."""
    lines = dict(line.split() for line in _emulated(
        INTEGER_CHECK.format(exporter=_exporter_dir())).split("\n") if line)
    assert int(lines["raw"]) > 0, "qemu did not run onnxruntime's AVX2 int8 kernel"
    assert int(lines["limited"]) == 0


def test_default_package_agrees_across_cpu_kinds(tmp_path, sentences):
    """Float kernels still round differently (AVX2 vs AVX-512 FMA paths), and int8 rounding
    amplifies the last bits a little: over the 200 validation texts the lowest cosine
    between this VNNI machine and the emulated AVX2 CPU was 0.99958 (mean 0.99999)."""
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(sentences), encoding="utf-8")
    emulated = tmp_path / "avx2.npy"
    _emulated(ENCODE, str(source), str(emulated))
    from edgembed import Encoder

    here = Encoder.load(default_package_path(), threads=1).encode(sentences[:24])
    agreement = cosines(here, np.load(emulated))
    assert agreement.min() >= 0.999, (agreement.min(), cpu_note())
