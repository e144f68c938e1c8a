"""One measured process: `python -m edgembed.bench.worker JOB.json T0`.

A fresh interpreter per system and round makes cold start (T0, the parent's clock just
before it started this process, to the first vector) and peak RSS real. The peer is
imported here and only here. Prints one JSON object on stdout; a peer that cannot be
imported prints {"skipped": reason} instead of failing."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edgembed.errors import EdgembedError  # light: `python -m` has imported edgembed already

Encode = Callable[[list[str]], np.ndarray]


def load_edgembed(system: dict, threads: int, batch_size: int) -> tuple[Encode, Encode]:
    from edgembed import Encoder
    from edgembed import encoder as encoder_module

    if "pass_tokens_per_thread" in system["extra"]:  # `edgembed.bench.pass_size` varies it
        encoder_module.PASS_TOKENS_PER_THREAD = system["extra"]["pass_tokens_per_thread"]
    encoder = Encoder.load(system["path"], threads=threads,
                           parallel_passes=system["extra"].get("parallel_passes"))
    return (lambda texts: encoder.encode(texts, batch_size=batch_size),
            lambda texts: encoder.encode(texts, batch_size=batch_size, kind="query"))


def load_sentence_transformers(system: dict, threads: int,
                               batch_size: int) -> tuple[Encode, Encode]:
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(system["path"], device="cpu", local_files_only=True)
    model.max_seq_length = system["max_seq_length"]

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, batch_size=batch_size, convert_to_numpy=True)

    return encode, encode


def load_fastembed(system: dict, threads: int, batch_size: int) -> tuple[Encode, Encode]:
    """The package's own ONNX file and tokenizer, registered as a custom model so fastembed
    loads it from disk (`specific_model_path`) and never asks the Hugging Face hub."""
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    model_name = f"edgembed-bench/{Path(system['path']).name}"
    TextEmbedding.add_custom_model(
        model=model_name, pooling=PoolingType.DISABLED, normalization=False,
        sources=ModelSource(hf=model_name), dim=system["extra"]["dim"],
        model_file="model.onnx", output_name=system["extra"]["output"])
    model = TextEmbedding(model_name=model_name, specific_model_path=system["path"],
                          threads=threads, providers=["CPUExecutionProvider"])

    def encode(texts: list[str]) -> np.ndarray:
        return np.stack(list(model.embed(texts, batch_size=batch_size)))

    return encode, encode


def load_onnxruntime(system: dict, threads: int, batch_size: int) -> tuple[Encode, Encode]:
    """The floor: tokenizers + one InferenceSession, default options, no sorting by length."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    path = Path(system["path"])
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=system["max_seq_length"])
    tokenizer.enable_padding(pad_id=system["extra"].get("pad_id", 0))
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path / "model.onnx"), options,
                                   providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    output = [system["extra"]["output"]]

    def encode(texts: list[str]) -> np.ndarray:
        rows = []
        for start in range(0, len(texts), batch_size):
            encodings = tokenizer.encode_batch(texts[start:start + batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids,
                     "attention_mask": np.array([e.attention_mask for e in encodings],
                                                dtype=np.int64),
                     "token_type_ids": np.zeros_like(ids)}
            rows.append(session.run(output, {n: feeds[n] for n in names})[0])
        return np.concatenate(rows)

    return encode, encode


def load_edgembed_openvino(system: dict, threads: int,
                           batch_size: int) -> tuple[Encode, Encode]:
    """The same encoder on OpenVINO's CPU device (its compiled-model cache is the run's own
    folder, so the first round starts with it empty)."""
    from edgembed import Encoder

    encoder = Encoder.load(system["path"], threads=threads, backend="openvino", device="CPU")
    return (lambda texts: encoder.encode(texts, batch_size=batch_size),
            lambda texts: encoder.encode(texts, batch_size=batch_size, kind="query"))


LOADERS = {"edgembed": load_edgembed, "edgembed-openvino": load_edgembed_openvino,
           "sentence-transformers": load_sentence_transformers,
           "fastembed": load_fastembed, "onnxruntime": load_onnxruntime}


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far. On Linux VmHWM, not ru_maxrss: the
    latter survives exec and so starts at the parent's size at fork time."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


ALONE_TEXTS = 100
# The short set takes a fraction of a second: its rate is the median of this many passes,
# so one stall of the machine does not decide a round.
SHORT_PASSES = 5


def alone_vs_batch(encode_one: Encode, texts: list[str], batched: np.ndarray) -> dict:
    """Cosine between each text encoded alone and the same text encoded in its batch: a
    query embedded on its own must match the same text indexed among others."""
    alone = np.concatenate([np.asarray(encode_one([text]), np.float32) for text in texts])
    inside = np.asarray(batched[:len(texts)], np.float32)
    cos = np.sum(alone * inside, axis=1) / (np.linalg.norm(alone, axis=1)
                                            * np.linalg.norm(inside, axis=1))
    return {"texts": len(texts), "min_cosine": round(float(cos.min()), 6),
            "mean_cosine": round(float(cos.mean()), 6)}


def measure(job: dict, t0: float) -> dict:
    system, threads, batch_size = job["system"], job["threads"], job["batch_size"]
    try:
        encode, encode_one = LOADERS[system["kind"]](system, threads, batch_size)
    except ImportError as exc:
        return {"skipped": f"{system['name']}: cannot import {exc.name or exc}"}
    except EdgembedError as exc:  # a backend that cannot run this package says why
        return {"skipped": f"{system['name']}: {' '.join(str(exc).split())}"}
    loaded_rss = peak_rss_mb()
    encode_one([job["short"][0]])
    result: dict = {"cold_start_s": round(time.time() - t0, 4), "rss_after_load_mb": loaded_rss,
                    "rss_first_vector_mb": peak_rss_mb()}
    encode(job["short"][:batch_size])  # warm-up: allocation and kernel selection

    rates = []
    for _ in range(SHORT_PASSES):
        start = time.perf_counter()
        short_vectors = encode(job["short"])
        rates.append(len(job["short"]) / (time.perf_counter() - start))
    result["short_per_s"] = round(float(np.median(rates)), 2)

    latencies = []
    for query in job["queries"]:
        start = time.perf_counter()
        encode_one([query])
        latencies.append((time.perf_counter() - start) * 1000)
    result["latency_ms"] = {"p50": round(float(np.percentile(latencies, 50)), 3),
                            "p95": round(float(np.percentile(latencies, 95)), 3)}
    result["peak_rss_mb"] = peak_rss_mb()
    result["alone_vs_batch"] = alone_vs_batch(encode_one, job["short"][:ALONE_TEXTS],
                                              short_vectors)

    vectors = {"short": np.asarray(short_vectors, dtype=np.float32)}
    if job["long"]:
        start = time.perf_counter()
        vectors["long"] = np.asarray(encode(job["long"]), dtype=np.float32)
        result["long_per_s"] = round(len(job["long"]) / (time.perf_counter() - start), 3)
        result["peak_rss_after_long_mb"] = peak_rss_mb()
    if job.get("vectors_out"):
        np.savez(job["vectors_out"], **vectors)
    return result


def main() -> None:
    job_path, t0 = sys.argv[1], float(sys.argv[2])
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(json.dumps(measure(job, t0)), flush=True)


if __name__ == "__main__":
    main()
