"""Where an encode call spends its time: tokenizer, padding, onnxruntime, and inside
onnxruntime each op type (its profiler), plus the multiply-accumulates the graph executes
per token, which turn tokens/s into a fraction of the machine's peak."""

from __future__ import annotations

import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

# ops whose work is a matrix product: MACs = elements of the output × the shared dimension
MATMUL_OPS = ("MatMul", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulNBits", "Gemm",
              "FusedMatMul", "QGemm", "MatMulIntegerToFloat", "QAttention", "Attention")


def _shape(entry: dict) -> list[int]:
    return next(iter(entry.values())) if entry else []


def node_macs(op: str, inputs: list[dict], outputs: list[dict]) -> int:
    if op not in MATMUL_OPS or not inputs or not outputs:
        return 0
    a, out = _shape(inputs[0]), _shape(outputs[0])
    if op in ("QAttention", "Attention"):
        return 0  # fused attention: projections and scores are not one product; not counted
    return int(np.prod(out)) * int(a[-1]) if a and out else 0


def summarise_trace(trace: list[dict]) -> dict:
    """Total µs and MACs per op type from an onnxruntime profile (Node events only)."""
    micros: dict[str, float] = defaultdict(float)
    macs: dict[str, int] = defaultdict(int)
    for event in trace:
        if event.get("cat") != "Node" or not event.get("name", "").endswith("_kernel_time"):
            continue
        args = event.get("args", {})
        op = args.get("op_name", "?")
        micros[op] += event.get("dur", 0)
        macs[op] += node_macs(op, args.get("input_type_shape", []),
                              args.get("output_type_shape", []))
    return {"node_us": dict(micros), "macs": dict(macs)}


def profile_package(package: str | Path, texts: list[str], threads: int,
                    batch_size: int = 32) -> dict:
    """Encode `texts` the way `Encoder.encode` does (length-sorted batches), timing each
    stage, with onnxruntime's profiler on for the forward passes."""
    from edgembed import Encoder
    from edgembed.session import create_session, ort_session, session_options
    from edgembed.tokenizer import pad_batch

    encoder = Encoder.load(package, threads=threads)
    encoder.encode(texts[:batch_size])  # warm-up outside the measured part

    start = time.perf_counter()
    encodings = encoder.tokenizer.encode_batch(texts)
    tokenize_s = time.perf_counter() - start
    lengths = np.array([len(e.ids) for e in encodings])
    order = np.argsort(-lengths, kind="stable")
    batches = [[encodings[i].ids for i in order[s:s + batch_size]]
               for s in range(0, len(order), batch_size)]

    start = time.perf_counter()
    feeds = []
    for ids in batches:
        input_ids, mask = pad_batch(ids, encoder.pad_id)
        feeds.append({"input_ids": input_ids, "attention_mask": mask,
                      "token_type_ids": np.zeros_like(input_ids)})
    pad_s = time.perf_counter() - start

    session = create_session(encoder.package.model_path, threads=threads)
    session.run(None, {n: feeds[-1][n] for n in encoder._input_names})
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, {n: feed[n] for n in encoder._input_names})
    run_s = time.perf_counter() - start

    start = time.perf_counter()
    encoder.encode(texts, batch_size=batch_size)
    encode_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as folder:
        options = session_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "ort")
        session = ort_session(encoder.package.model_path, options, ["CPUExecutionProvider"])
        for feed in feeds:
            session.run(None, {n.name: feed[n.name] for n in session.get_inputs()})
        trace = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    ops = summarise_trace(trace)
    total_us = sum(ops["node_us"].values())
    tokens = int(lengths.sum())
    padded = int(sum(len(b) * max(len(r) for r in b) for b in batches))
    return {
        "texts": len(texts), "tokens": tokens, "padded_tokens": padded,
        "encode_s": round(encode_s, 4),
        "stages_s": {"tokenize": round(tokenize_s, 4), "pad": round(pad_s, 4),
                     "onnxruntime": round(run_s, 4)},
        "op_share": {op: round(us / total_us, 4) for op, us in
                     sorted(ops["node_us"].items(), key=lambda item: -item[1])},
        "macs_per_token": int(sum(ops["macs"].values()) / max(tokens, 1)),
        "macs_by_op": ops["macs"],
    }


# onnxruntime session settings worth trying on a CPU: (label, attribute or config entry, value)
SESSION_VARIANTS = (
    ("default", None, None),
    ("no spinning", "session.intra_op.allow_spinning", "0"),
    ("no memory arena", "enable_cpu_mem_arena", False),
    ("no memory pattern", "enable_mem_pattern", False),
)


def settings_sweep(package: str | Path, texts: list[str], threads: int) -> list[dict]:
    """Sentences/s of `Encoder.encode` under other thread counts and batch sizes, and
    single-text p50 and batch sentences/s under onnxruntime session settings, in this one
    process (best of two passes): which knob moves the number, not a ranking."""
    from edgembed import Encoder

    rows = []
    for pool in sorted({1, threads}):
        encoder = Encoder.load(package, threads=pool, verify=False)
        for batch in (8, 32, 128):
            rows.append({"threads": pool, "batch_size": batch,
                         "sentences_per_s": _best_rate(encoder, texts, batch)})
    return rows


def passes_sweep(packages: dict[str, str | Path], short: list[str], long: list[str],
                 threads: int) -> list[dict]:
    """Batch-32 sentences/s (and long texts/s) of `Encoder.encode` per graph with its
    passes run one at a time on all threads and side by side on one thread each
    (`parallel_passes`), in this one process, each setting measured twice in alternation
    (best kept): what the runtime's default for each graph rests on."""
    from edgembed import Encoder

    rows: dict[tuple[str, bool], dict] = {}
    for _ in range(2):
        for graph, package in packages.items():
            for parallel in (False, True):
                encoder = Encoder.load(package, threads=threads, verify=False,
                                       parallel_passes=parallel)
                row = rows.setdefault((graph, parallel), {
                    "graph": graph, "parallel_passes": parallel, "threads": threads,
                    "sentences_per_s": 0.0, "long_per_s": 0.0})
                row["sentences_per_s"] = max(row["sentences_per_s"],
                                             _best_rate(encoder, short, 32))
                if long:
                    row["long_per_s"] = max(row["long_per_s"], _best_rate(encoder, long, 32))
    return list(rows.values())


def session_sweep(package: str | Path, texts: list[str], threads: int) -> list[dict]:
    """Single-text p50 and batch-32 sentences/s with each of SESSION_VARIANTS."""
    from edgembed import Encoder
    from edgembed.session import ort_session, session_options

    def variant(model_path: Path, pool: int, name: str | None, value: object) -> object:
        options = session_options(pool)
        if isinstance(value, str):
            options.add_session_config_entry(name, value)
        elif name is not None:
            setattr(options, name, value)
        return ort_session(model_path, options, ["CPUExecutionProvider"])

    rows = []
    for label, name, value in SESSION_VARIANTS:
        encoder = Encoder.load(package, threads=threads, verify=False)
        model_path = encoder.package.model_path
        encoder.session = variant(model_path, 1 if encoder.parallel_passes else threads,
                                  name, value)  # the encoder's own thread layout
        single = []
        for text in texts[:50] * 2:
            start = time.perf_counter()
            encoder.encode([text])
            single.append(time.perf_counter() - start)
        rows.append({"session": label, "p50_ms": round(float(np.median(single[50:])) * 1e3, 3),
                     "sentences_per_s": _best_rate(encoder, texts, 32)})
    return rows


# token counts of one text encoded alone, for lone_text_sweep
LONE_LENGTHS = (16, 32, 48, 64, 96, 128, 192, 256)


def lone_text_sweep(packages: dict[str, str | Path], text: str, threads: int,
                    repeats: int = 15) -> list[dict]:
    """One text alone, cut to each of LONE_LENGTHS tokens, run per graph on a
    single-thread session and on one with `threads` threads, alternating (median of
    `repeats`): what a lone text gives up under parallel passes (one thread), by length,
    and why float graphs keep every thread."""
    from edgembed import Encoder
    from edgembed.session import create_session
    from edgembed.tokenizer import pad_batch, tokenize

    rows = []
    for graph, package in packages.items():
        encoder = Encoder.load(package, threads=threads, verify=False)
        ids = tokenize(encoder.tokenizer, [text])[0]
        sessions = {pool: create_session(encoder.package.model_path, threads=pool)
                    for pool in (1, threads)}
        for length in (n for n in LONE_LENGTHS if n <= len(ids)):
            input_ids, mask = pad_batch([ids[:length - 1] + ids[-1:]], encoder.pad_id)
            feed = {"input_ids": input_ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(input_ids)}
            feed = {name: feed[name] for name in encoder._input_names}
            times: dict[int, list[float]] = {pool: [] for pool in sessions}
            for _ in range(repeats + 1):
                for pool, session in sessions.items():
                    start = time.perf_counter()
                    session.run(None, feed)
                    times[pool].append(time.perf_counter() - start)
            rows.append({"graph": graph, "tokens": length, "threads": threads,
                         "one_thread_ms": _median_ms(times[1][1:]),
                         "all_threads_ms": _median_ms(times[threads][1:])})
    return rows


def _median_ms(seconds: list[float]) -> float:
    return round(float(np.median(seconds)) * 1e3, 3)


def _best_rate(encoder, texts: list[str], batch: int) -> float:
    encoder.encode(texts[:batch], batch_size=batch)
    best = 0.0
    for _ in range(2):
        start = time.perf_counter()
        encoder.encode(texts, batch_size=batch)
        best = max(best, len(texts) / (time.perf_counter() - start))
    return round(best, 1)


def int8_gemm_rate(threads: int, size: int = 1024, repeats: int = 10) -> dict | None:
    """Multiply-accumulates per second of onnxruntime's u8×s8 `MatMulInteger` on one
    size × size × size product with a stored weight, best of `repeats`: what the int8
    kernels reach on this CPU when nothing else bounds them, next to the flag-based peak
    estimate (a CPU with AMX can beat its vector units' peak). None without the `onnx`
    package, which builds the one-node graph."""
    try:
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        return None
    from edgembed.session import create_session

    rng = np.random.default_rng(0)
    weight = rng.integers(-127, 128, size=(size, size), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])], "int8_gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])],
        [numpy_helper.from_array(weight, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = create_session(model.SerializeToString(), threads=threads)
    feed = {"a": rng.integers(0, 256, size=(size, size), dtype=np.uint8)}
    session.run(None, feed)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        best = min(best, time.perf_counter() - start)
    return {"threads": threads, "shape": [size, size, size], "repeats": repeats,
            "macs_per_s": round(size ** 3 / best, -6)}
