"""Static int8 for NPUs (`int8-static`, `--target npu`): a QDQ graph with fixed scales, int8
per-channel weights, uint8 activations, and uint16 activations on the few tensors that
need them (A16W8, as Qualcomm's QNN does).

Why static: NPUs (Intel NPU through OpenVINO, Qualcomm HTP through QNN) cannot compute a
scale at run time, so every activation scale is calibrated once. Why mixed widths: with
uint8 everywhere, the outputs of the FFN MatMuls and the GELU outputs (a few outlier
channels) lose too much, and the package reaches a mean cosine of only ~0.93 to fp32; with
uint16 everywhere it reaches 0.999, but 16-bit activations move twice the bytes and not
every NPU runs them at full speed. So each activation tensor is ranked by the error uint8
adds to it alone (one float pass), and the fewest worst ones get uint16 until the
held-out cosine loss fits the budget (autoquant.choose_kept_nodes' bisection).
SmoothQuant-style smoothing of the LayerNorm outputs (per_token.plan_smoothing) lifted
uint8-everywhere only from 0.926 to 0.933 on MiniLM, since the worst tensors are not
LayerNorm outputs, so it is not used here (benchmarks/results/npu_int8.json).

Calibration runs on texts one at a time (no padding): padding rows carry values the model
never pools, which would only widen the ranges. The ranges are then given to
onnxruntime's quantize_static as per-tensor overrides, so each try of the search
quantizes without calibrating again. The graph holds only standard ONNX ops
(QuantizeLinear / DequantizeLinear, opset 21 for uint16), no com.microsoft op and no
DynamicQuantizeLinear."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgembed.errors import ExportError

from .activations import rows
from .autoquant import choose_kept_nodes

Ranges = Mapping[str, tuple[float, float]]
QUANTIZED_OPS = ("MatMul", "Gather")  # Gather: the embedding tables, weight-only int8


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over tokenized batches."""

    def __init__(self, batches: Sequence[dict], input_names: set[str]) -> None:
        self._items = iter([{k: v for k, v in b.items() if k in input_names} for b in batches])

    def get_next(self) -> dict | None:
        return next(self._items, None)


def _inputs(model: onnx.ModelProto) -> set[str]:
    return {graph_input.name for graph_input in model.graph.input}


def calibrate_ranges(model: onnx.ModelProto, batches: Sequence[dict]
                     ) -> dict[str, tuple[float, float]]:
    """(min, max) of every float tensor a MatMul or Gather reads or writes, over `batches`
    (MinMax: with uint8 everywhere, clipping at the 99.99th or 99.999th percentile measured
    no better on MiniLM, and the 16-bit tensors take the outliers)."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    if not batches:
        raise ExportError("int8-static needs calibration texts")
    with tempfile.TemporaryDirectory(prefix="edgembed-calib-") as workdir:
        path = Path(workdir) / "model.onnx"
        onnx.save(model, str(path))
        calibrator = create_calibrator(path, list(QUANTIZED_OPS),
                                       augmented_model_path=str(Path(workdir) / "augmented.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        calibrator.collect_data(_Reader(batches, _inputs(model)))
        data = calibrator.compute_data()
    return {name: (float(np.min(d.range_value[0])), float(np.max(d.range_value[1])))
            for name, d in data.items()}


def uint8_errors(model: onnx.ModelProto, ranges: Ranges, batches: Sequence[dict]
                 ) -> dict[str, float]:
    """Each calibrated tensor's relative squared error ||q(x) - x||² / ||x||² when it alone
    is uint8 with its calibrated range, on the real tokens of `batches`: the ranking."""
    error = dict.fromkeys(ranges, 0.0)
    energy = dict.fromkeys(ranges, 0.0)
    for values in rows(model, list(ranges), batches):
        for name, x in values.items():
            low, high = min(ranges[name][0], 0.0), max(ranges[name][1], 0.0)
            scale = max((high - low) / 255, 1e-30)
            zero = np.round(-low / scale)
            dequantized = (np.clip(np.round(x / scale) + zero, 0, 255) - zero) * scale
            error[name] += float(np.sum((dequantized - x) ** 2, dtype=np.float64))
            energy[name] += float(np.sum(np.square(x, dtype=np.float64)))
    return {name: error[name] / max(energy[name], 1e-30) for name in ranges}


def quantize_qdq(model: onnx.ModelProto, ranges: Ranges, sample: dict, wide: Sequence[str] = (),
                 keep: Sequence[str] = ()) -> onnx.ModelProto:
    """The QDQ graph: int8 per-channel weights, activations uint8 with the given `ranges`,
    uint16 for the tensors in `wide`; nodes in `keep` stay float. `sample`: one tokenized
    batch for the quantizer's own calibration, whose ranges `ranges` all override."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    wide = set(wide)
    overrides = {name: [{"rmin": np.float32(low), "rmax": np.float32(high),
                         **({"quant_type": QuantType.QUInt16} if name in wide else {})}]
                 for name, (low, high) in ranges.items()}
    with tempfile.TemporaryDirectory(prefix="edgembed-quant-") as workdir:
        output = Path(workdir) / "model.onnx"
        # it edits its input (external data), so it gets a copy
        quantize_static(onnx.ModelProto.FromString(model.SerializeToString()), output,
                        _Reader([sample], _inputs(model)), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=list(QUANTIZED_OPS), nodes_to_exclude=list(keep),
                        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT,
                                       "TensorQuantOverrides": overrides})
        quantized = onnx.load(str(output))
    _check_standard(quantized)
    return quantized


def _check_standard(model: onnx.ModelProto) -> None:
    """NPUs need standard ops and fixed scales: refuse what the quantizer should never make."""
    bad = sorted({f"{node.domain}:{node.op_type}" for node in model.graph.node
                  if node.domain not in ("", "ai.onnx") or node.op_type == "DynamicQuantizeLinear"})
    if bad:
        raise ExportError(f"int8-static produced non-static or non-standard ops: {', '.join(bad)}")


def quantize_static_mixed(model: onnx.ModelProto, calibration: Sequence[dict],
                          ranking: Sequence[dict], held_out: list[dict], max_loss: float,
                          keep: Sequence[str] = ()) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """Calibrate on `calibration` (single texts), rank tensors on `ranking`, and give the
    fewest worst tensors uint16 so that the mean cosine loss against `model` on
    `held_out` is within `max_loss`. Returns the graph and its manifest description."""
    ranges = calibrate_ranges(model, calibration)
    errors = uint8_errors(model, ranges, ranking)
    sample = calibration[0]
    search = choose_kept_nodes(
        model, errors, lambda wide: quantize_qdq(model, ranges, sample, wide, keep),
        held_out, max_loss)
    wide = search.pop("kept_in_float")
    graph = quantize_qdq(model, ranges, sample, wide, keep)
    return graph, {
        "method": "int8-static",
        "format": "QDQ (QuantizeLinear/DequantizeLinear), static scales",
        "weights": "int8 per output channel, symmetric",
        "activations": f"uint8, or uint16 on the {len(wide)} of {len(ranges)} tensors uint8 "
                       "hurts most; MinMax ranges over single calibration texts",
        "activations_16bit": list(wide),
        "kept_in_float": list(keep),
        "search": {**search, "sensitivity_how": "relative squared error uint8 adds to each "
                   "activation tensor alone, on its calibration values, highest first"},
    }
