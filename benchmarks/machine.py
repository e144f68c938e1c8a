"""Machine and library facts recorded with every benchmark result, so numbers can be
compared only with numbers from the same kind of machine."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import sys

LIBRARIES = ("edgembed", "onnxruntime", "tokenizers", "numpy", "usearch", "torch",
             "sentence-transformers", "transformers", "optimum-onnx", "fastembed", "faiss-cpu")


def cpu_info() -> dict:
    model, flags = platform.processor(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx512vnni", "avx_vnni", "amx_int8", "fma")
    return {"model": model, "cores": os.cpu_count(),
            "flags": sorted(flag for flag in flags if flag in wanted)}


def machine_info() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu_info(), "python": sys.version.split()[0], "platform": platform.platform(),
            "libraries": versions}
