"""Prove a package against its source: the same texts through torch and through the
edgembed runtime, compared by cosine similarity."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgembed import Encoder

from .feeds import forward_inputs
from .source import SourceModel


def pool(hidden: Any, attention_mask: Any, pooling: str) -> Any:
    """Torch pooling of token states, the same as the exported head (head.py): the torch
    reference and healing both use it."""
    mask = attention_mask.unsqueeze(-1).float()
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "max":
        return (hidden + (1 - mask) * -1e9).max(dim=1).values
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def reference_embeddings(source: SourceModel, texts: Sequence[str],
                         batch_size: int = 32) -> np.ndarray:
    """fp32 torch embeddings: sentence-transformers for its folders, otherwise
    transformers AutoModel with the same pooling, Dense modules and normalisation the
    exported head applies."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    if source.is_sentence_transformers:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(source.path), device="cpu", local_files_only=True)
        model.max_seq_length = source.max_seq_length
        # the texts as given, no prompt: validate_package encodes them alike
        return model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                            normalize_embeddings=False, prompt="").astype(np.float32)

    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(source.path), local_files_only=True)
    model = AutoModel.from_pretrained(str(source.path), local_files_only=True).eval()
    rows = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True,
                              truncation=True, max_length=source.max_seq_length,
                              return_tensors="pt")
            hidden = model(**forward_inputs(model, batch)).last_hidden_state
            pooled = pool(hidden, batch["attention_mask"], source.pooling).numpy()
            for dense in source.dense:
                pooled = dense.apply(pooled)
            if source.normalize:
                pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True),
                                             1e-12)
            rows.append(pooled)
    return np.concatenate(rows).astype(np.float32)


def cosine_agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """Row-wise cosine between two embedding matrices of the same texts."""
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    cand = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    cosines = np.sum(ref * cand, axis=1)
    return {"mean_cosine": round(float(cosines.mean()), 6),
            "min_cosine": round(float(cosines.min()), 6), "n_texts": int(len(cosines))}


def validate_package(encoder: Encoder, reference: np.ndarray,
                     texts: Sequence[str]) -> dict[str, float]:
    """Encode `texts` with the edgembed runtime and compare with `reference` (same texts,
    without any prompt: the model is what is measured)."""
    return cosine_agreement(reference, encoder.encode(list(texts), prompt=""))


def throughput(systems: dict[str, Callable[[list[str]], object]], texts: Sequence[str],
               rounds: int = 3) -> dict[str, np.ndarray]:
    """Sentences per second of each system (a function that encodes a list of texts), one
    value per round. The systems take turns in every round, so machine noise hits all of
    them alike; compare them round by round."""
    texts = list(texts)
    for encode in systems.values():
        encode(texts[:32])  # warm-up: first runs pay for allocation and kernel selection
    timings: dict[str, list[float]] = {name: [] for name in systems}
    for _ in range(rounds):
        for name, encode in systems.items():
            start = time.perf_counter()
            encode(texts)
            timings[name].append(len(texts) / (time.perf_counter() - start))
    return {name: np.array(values) for name, values in timings.items()}


def retrieval_quality(encoder: Encoder, data_dir: str | Path,
                      split: str = "test") -> dict[str, float]:
    """nDCG@10 and recall@100 with exact float search on a BEIR-layout folder."""
    from edgembed.eval.beir import exact_search_quality, load_beir

    data = load_beir(data_dir, split=split)
    return exact_search_quality(data, encoder.encode(data.doc_texts, kind="document"),
                                encoder.encode(data.query_texts, kind="query"))
