"""A tiny sentence-transformers model, and a local HTTP server that serves model folders in
the Hugging Face Hub's URL layout, for testing Hub ids without the internet.

huggingface_hub's `snapshot_download` (before 1.0) asks `GET /api/models/{repo}/revision/
{rev}` for the commit and file list, then `HEAD` and `GET /{repo}/resolve/{commit}/{file}`
for each file, reading the `X-Repo-Commit`, `ETag` and `Content-Length` headers. Point it
here with HF_ENDPOINT=http://127.0.0.1:PORT (and a temporary HF_HOME)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

CORPUS = ("the a cat dog sat on mat ran fast slow big small red blue query passage what is "
          "how do you make bread rain falls from clouds water cycle bike chain oil")


def build_tiny_model(folder: Path, prompts: dict[str, str] | None = None,
                     default_prompt_name: str | None = None, safetensors: bool = True) -> Path:
    """A sentence-transformers folder: a 2-layer BERT with random weights, a WordPiece
    tokenizer trained here with `tokenizers`, mean pooling and Normalize. `safetensors=False`
    saves the weights as pytorch_model.bin."""
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials)
    words = CORPUS.split()
    corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    tokenizer.train_from_iterator(corpus, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", model_max_length=64)
    fast.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.get_vocab_size(), hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                        max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(folder, safe_serialization=safetensors)
    modules = [{"idx": 0, "name": "0", "path": "", "type":
                "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type":
                "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type":
                "sentence_transformers.models.Normalize"}]
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": 64, "do_lower_case": False}))
    (folder / "config_sentence_transformers.json").write_text(json.dumps(
        {"prompts": prompts or {}, "default_prompt_name": default_prompt_name,
         "similarity_fn_name": "cosine"}))
    return folder


def repo_files(folder: Path) -> dict[str, bytes]:
    """Every file of a folder, by its path relative to the folder (what the Hub serves)."""
    return {path.relative_to(folder).as_posix(): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


class FakeHub:
    """Repositories served in the Hub's layout: repo id → commit → files, and branch names."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}
        self.branches: dict[str, dict[str, str]] = {}
        self.requests: list[str] = []

    def add(self, repo_id: str, files: dict[str, bytes], branch: str = "main") -> str:
        """Commit `files` to `repo_id` on `branch`; returns the commit hash."""
        digest = hashlib.sha1(repo_id.encode())
        for name, data in sorted(files.items()):
            digest.update(name.encode() + hashlib.sha256(data).digest())
        commit = digest.hexdigest()
        self.repos.setdefault(repo_id, {})[commit] = files
        self.branches.setdefault(repo_id, {})[branch] = commit
        return commit

    def resolve(self, repo_id: str, revision: str) -> str | None:
        commits = self.repos.get(repo_id, {})
        return revision if revision in commits else self.branches[repo_id].get(revision)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_HEAD(self) -> None:
                self.answer(body=False)

            def do_GET(self) -> None:
                self.answer(body=True)

            def fail(self, status: int, code: str) -> None:
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Type", "application/json")
                payload = json.dumps({"error": code}).encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def answer(self, body: bool) -> None:
                path = unquote(self.path.split("?", 1)[0])
                hub.requests.append(f"{self.command} {path}")
                api = path.startswith("/api/models/")
                if api:  # /api/models/{repo}/revision/{rev}
                    repo_id, _, revision = path.removeprefix("/api/models/").partition(
                        "/revision/")
                    name = ""
                else:  # /{repo}/resolve/{rev}/{file}
                    repo_id, _, rest = path.lstrip("/").partition("/resolve/")
                    revision, _, name = rest.partition("/")
                if repo_id not in hub.repos:
                    return self.fail(401, "RepoNotFound")
                commit = hub.resolve(repo_id, revision or "main")
                if commit is None:
                    return self.fail(404, "RevisionNotFound")
                files = hub.repos[repo_id][commit]
                if api:
                    data = json.dumps({"id": repo_id, "modelId": repo_id, "sha": commit,
                                       "private": False, "siblings": [
                                           {"rfilename": f} for f in files]}).encode()
                    content_type = "application/json"
                elif name in files:
                    data, content_type = files[name], "application/octet-stream"
                else:
                    return self.fail(404, "EntryNotFound")
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Repo-Commit", commit)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.end_headers()
                if body:
                    self.wfile.write(data)

        return Handler


@contextmanager
def serving(hub: FakeHub) -> Iterator[str]:
    """Serve `hub` on a free loopback port; yields its URL (the HF_ENDPOINT)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), hub.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
