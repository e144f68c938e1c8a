"""Machine and library facts recorded with every benchmark result, so numbers can be
compared only with numbers from the same kind of machine."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import platform
import sys

LIBRARIES = ("edgembed", "onnxruntime", "tokenizers", "numpy", "usearch", "simsimd", "torch",
             "sentence-transformers", "transformers", "optimum-onnx", "fastembed", "faiss-cpu",
             "openvino")


def cpu_info() -> dict:
    model, flags, mhz = platform.processor(), [], 0.0
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
                elif line.startswith("cpu MHz"):
                    mhz = max(mhz, float(line.split(":", 1)[1]))
    except (OSError, ValueError):
        pass
    wanted = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512vnni", "avx_vnni",
              "amx_int8", "fma")
    return {"model": model, "cores": os.cpu_count(), "mhz": mhz,
            "flags": sorted(flag for flag in flags if flag in wanted)}


def peak_macs(cpu: dict, cores: int) -> dict:
    """Theoretical int8 and fp32 multiply-accumulates per second of `cores` cores, from the
    CPU flags and the clock in /proc/cpuinfo. Vector units: two pipes per core that can each
    start one multiply instruction per cycle (true of Zen 2-4 and Skylake-class cores);
    int8: one 512-bit VNNI vpdpbusd = 64 u8×s8 MACs, one 256-bit vpmaddubsw (AVX2, or
    AVX-VNNI's vpdpbusd) = 32; fp32: one FMA = 16 (512-bit) or 8 (256-bit) MACs. AMX
    (`amx_int8`, Sapphire Rapids and later): one tile unit per core whose tdpbusd does
    16×16×64 = 16,384 u8×s8 MACs every 16 cycles, 1,024 per cycle; onnxruntime's int8 GEMMs
    run on it where the CPU has it, so the vector estimate would understate the peak 8×.
    The clock is what the kernel reports (under a hypervisor, often the nominal, not the
    boost clock)."""
    flags = set(cpu.get("flags", []))
    ghz = cpu.get("mhz", 0.0) / 1000
    ports = 2
    if "amx_int8" in flags:
        int8_per_cycle, int8_how = 1024, "AMX tdpbusd (16,384 int8 MACs / 16 cycles, one tile unit)"
    elif flags & {"avx512_vnni", "avx512vnni"}:
        int8_per_cycle = ports * 64
        int8_how = f"{ports} pipes × avx512 VNNI vpdpbusd (64 int8 MACs / instruction)"
    elif "avx2" in flags:
        int8_per_cycle = ports * 32
        int8_how = f"{ports} pipes × avx2 vpmaddubsw (32 int8 MACs / 256-bit instruction)"
    else:
        int8_per_cycle = ports * 16
        int8_how = f"{ports} pipes × sse vpmaddubsw (16 int8 MACs / 128-bit instruction)"
    fp32 = 16 if "avx512f" in flags else 8 if "fma" in flags else 4
    return {
        "cores": cores, "ghz": round(ghz, 3), "ports": ports,
        "int8_macs_per_s": cores * ghz * 1e9 * int8_per_cycle,
        "fp32_macs_per_s": cores * ghz * 1e9 * ports * fp32,
        "how": f"cores × GHz × MACs per cycle; int8: {int8_how}; "
               f"fp32: {ports} pipes × {fp32}-lane FMA",
    }


def machine_info() -> dict:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return {"cpu": cpu_info(), "python": sys.version.split()[0], "platform": platform.platform(),
            "libraries": versions}
