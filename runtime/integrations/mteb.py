"""An edgembed package as an MTEB model (`pip install 'edgembed[mteb]'`), so any MTEB task
scores the exported (quantized) model as users run it.

    import mteb
    from edgembed.integrations.mteb import EdgembedMTEBModel
    results = mteb.evaluate(EdgembedMTEBModel("path/to/package"), mteb.get_tasks(["SciFact"]))

MTEB asks for queries with `prompt_type="query"`: they get the package's query prefix;
everything else (documents, and the texts of non-retrieval tasks) its document prefix.
Scores are cosine similarities, as the package's vectors are compared everywhere else.
The model's name in MTEB's results is `edgembed/<package name>`, its revision the
package's id (name and model.onnx checksum), so results of different exports never mix."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..encoder import Encoder
from . import require
from .embedder import Embedder

_WHAT = "edgembed.integrations.mteb"
_abs_encoder = require("mteb.models.abs_encoder", "mteb", _WHAT)
_model_meta = require("mteb.models.model_meta", "mteb", _WHAT)
_types = require("mteb.types", "mteb", _WHAT)


class EdgembedMTEBModel(_abs_encoder.AbsEncoder):
    """MTEB's encoder protocol over an edgembed package: `package` is its directory (None:
    the bundled default), or pass a loaded `encoder`. `encode_kwargs` and
    `query_encode_kwargs` go to `Encoder.encode` as in the other adapters."""

    def __init__(self, package: str | Path | None = None, *, encoder: Encoder | None = None,
                 threads: int | None = None, batch_size: int = 32,
                 encode_kwargs: Mapping[str, Any] | None = None,
                 query_encode_kwargs: Mapping[str, Any] | None = None) -> None:
        self.embedder = Embedder.build(package, encoder, threads, batch_size, "float32",
                                       encode_kwargs, query_encode_kwargs)
        self.model = self.embedder.encoder
        self.mteb_model_meta = model_meta(self.model)

    def encode(self, inputs: Iterable[Mapping[str, Any]], *, task_metadata: Any,
               hf_split: str, hf_subset: str, prompt_type: Any = None,
               **kwargs: Any) -> np.ndarray:
        """float32 rows for the texts of MTEB's batches, in order. MTEB's own batch size
        (in `kwargs`) only shaped those batches: the encoder batches by length itself."""
        texts = [text for batch in inputs for text in batch["text"]]
        kind = "query" if prompt_type == _types.PromptType.query else "document"
        return self.embedder.encode(texts, kind)


def model_meta(encoder: Encoder) -> Any:
    """MTEB's description of a package, from its manifest; unknowns stay None."""
    manifest = encoder.manifest
    source = (manifest.source or {}).get("model")
    return _model_meta.ModelMeta(
        loader=None, name=f"edgembed/{manifest.name}", revision=encoder.package.package_id,
        release_date=None, languages=None, n_parameters=None, memory_usage_mb=None,
        max_tokens=manifest.max_seq_length, embed_dim=encoder.dim, license=None,
        open_weights=None, public_training_code=None, public_training_data=None,
        framework=["ONNX"], similarity_fn_name=_model_meta.ScoringFunction.COSINE,
        use_instructions=bool((manifest.prefixes or {}).get("query")),
        training_datasets=None, adapted_from=source if isinstance(source, str) else None)


def beir_task(folder: str | Path, name: str = "LocalBEIRRetrieval", split: str = "test") -> Any:
    """An MTEB retrieval task over a local BEIR folder (corpus.jsonl, queries.jsonl,
    qrels/SPLIT.tsv), read as `edgembed eval` reads it: MTEB's metrics on your own data,
    with nothing downloaded. Document texts are title + " " + text."""
    from ..eval.beir import load_beir

    dataset = require("datasets", "mteb", _WHAT).Dataset
    retrieval = require("mteb.abstasks.retrieval", "mteb", _WHAT)
    loaders = require("mteb.abstasks.retrieval_dataset_loaders", "mteb", _WHAT)
    task_metadata = require("mteb.abstasks.task_metadata", "mteb", _WHAT)
    root = Path(folder).expanduser()

    class LocalBEIRTask(retrieval.AbsTaskRetrieval):
        metadata = task_metadata.TaskMetadata(
            name=name, type="Retrieval", main_score="ndcg_at_10", category="t2t",
            description=f"BEIR-layout data in {root}", reference=None,
            dataset={"path": str(root), "revision": "local"}, eval_splits=[split],
            eval_langs=["eng-Latn"], modalities=["text"], date=None, dialect=None,
            domains=None, task_subtypes=None, license=None, annotations_creators=None,
            sample_creation=None, bibtex_citation=None)

        def load_data(self, **kwargs: Any) -> None:
            data = load_beir(root, split)
            self.dataset = {"default": {split: loaders.RetrievalSplitData(
                corpus=dataset.from_dict({"id": data.doc_ids, "text": data.doc_texts}),
                queries=dataset.from_dict({"id": data.query_ids, "text": data.query_texts}),
                relevant_docs=data.qrels, top_ranked=None)}}
            self.data_loaded = True

    return LocalBEIRTask()
