"""Which backends and devices a package suits, from its manifest alone (the runtime has no
`onnx` to read graphs with).

The facts come from the manifest's `quantization.graph` record, which the exporter takes
from the written graph (edgembed.export.graph_record); packages written before that
record existed get the facts their quantization method implies. The rules are what each
backend needs, as documented in docs/export.md ("Which backends a package suits"):

* onnxruntime CPU runs every package.
* OpenVINO (CPU, GPU) converts standard ONNX, and only some com.microsoft operators;
  any com.microsoft operator counts as unsupported here (the default package's per-token
  int8 does not convert in OpenVINO 2026.4).
* NPUs (OpenVINO NPU, Qualcomm QNN HTP) compile for fixed shapes with scales fixed at
  export time: static shapes, standard operators, no run-time activation scales. QNN HTP
  computes in integers, so it also needs a quantized (QDQ) graph with 8- or 16-bit
  activations; OpenVINO's NPU also runs float graphs.
* CoreML (Apple's Neural Engine) computes in float16: static shapes and a float graph
  (fp32 or fp16 packages), as docs/npu.md recommends.
* DirectML takes standard operators, any shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .manifest import Manifest

# what each method writes, for manifests without a `quantization.graph` record
_IMPLIED: dict[str, dict[str, Any]] = {
    "none": {"non_standard_ops": [], "dynamic_activation_scales": False, "float": "float32"},
    "fp16": {"non_standard_ops": [], "dynamic_activation_scales": False, "float": "float16"},
    "int8": {"non_standard_ops": ["com.microsoft:MatMulIntegerToFloat"],
             "dynamic_activation_scales": True},
    "auto": {"non_standard_ops": ["com.microsoft:MatMulIntegerToFloat"],
             "dynamic_activation_scales": True},
    "int8-dynamic": {"non_standard_ops": [], "dynamic_activation_scales": True},
    "int8-static": {"non_standard_ops": [], "dynamic_activation_scales": False,
                    "static_activation_bits": [8]},
}


@dataclass(frozen=True)
class GraphFacts:
    """What a package's graph asks of a backend."""

    static_shape: tuple[int, int] | None
    opset: int | None
    non_standard_ops: tuple[str, ...]
    dynamic_activation_scales: bool
    static_activation_bits: tuple[int, ...]  # QDQ activations; () when none are quantized
    quantized_nodes: Mapping[str, int]  # e.g. {"MatMul a8 w8": 27}
    recorded: bool  # False: implied by the quantization method, not read from the graph

    @property
    def kind(self) -> str:
        """One phrase: 'QDQ int8, static scales (activations 8/16-bit)', ..."""
        if self.dynamic_activation_scales:
            return "int8 with activation scales computed at run time"
        if self.static_activation_bits:
            bits = "/".join(str(b) for b in self.static_activation_bits)
            return f"QDQ int8 weights, static scales, {bits}-bit activations"
        return "float (no activation quantization)"


def graph_facts(manifest: Manifest) -> GraphFacts:
    """The facts of `manifest`'s graph: recorded by the exporter, or implied by its method."""
    quantization = manifest.quantization or {}
    record = quantization.get("graph")
    if record is not None:
        qdq = record.get("qdq") or {}
        return GraphFacts(manifest.static_shape, record.get("opset"),
                          tuple(record.get("non_standard_ops") or ()),
                          bool(record.get("dynamic_activation_scales")),
                          tuple(qdq.get("static_activation_bits") or ()),
                          dict(qdq.get("counts") or {}), True)
    implied = _IMPLIED.get(quantization.get("method", "none"), _IMPLIED["none"])
    non_standard = list(implied["non_standard_ops"])
    if quantization.get("kept_in_float") and quantization.get("method") in ("auto",
                                                                             "int8-dynamic"):
        non_standard.append("com.microsoft:MatMulNBits")
    if quantization.get("weight_bits") == 4:
        non_standard.append("com.microsoft:MatMulNBits")
    return GraphFacts(manifest.static_shape, None, tuple(sorted(set(non_standard))),
                      implied["dynamic_activation_scales"],
                      tuple(implied.get("static_activation_bits", ())), {}, False)


@dataclass(frozen=True)
class Suitability:
    backend: str
    suits: bool
    why: str


def suitability(facts: GraphFacts) -> list[Suitability]:
    """Per backend/device: whether the package's graph meets what it needs, and why not."""
    ops = ([f"non-standard operators ({', '.join(facts.non_standard_ops)})"]
           if facts.non_standard_ops else [])
    shapes = ([] if facts.static_shape is not None
              else ["dynamic shapes (export with --target npu or --static-shape)"])
    scales = ["activation scales computed at run time"] if facts.dynamic_activation_scales else []
    fixed_device = ops + shapes + scales
    integer = list(fixed_device)
    if not facts.dynamic_activation_scales and not facts.static_activation_bits:
        integer.append("float graph (HTP computes in integers: export with --target npu)")
    elif not set(facts.static_activation_bits) <= {8, 16}:
        integer.append(f"{facts.static_activation_bits}-bit activations")

    coreml = ops + shapes + scales + (["a quantized graph (the Neural Engine computes in "
                                        "float16: export --quantize fp16 --static-shape)"]
                                       if facts.static_activation_bits else [])

    def verdict(name: str, problems: list[str]) -> Suitability:
        return Suitability(name, not problems, "; ".join(problems) if problems else "yes")

    return [
        verdict("onnxruntime CPU", []),
        verdict("OpenVINO CPU/GPU", ops),
        verdict("OpenVINO NPU", fixed_device),
        verdict("QNN HTP (Qualcomm NPU)", integer),
        verdict("CoreML (Apple)", coreml),
        verdict("DirectML (Windows GPU/NPU)", ops),
    ]
