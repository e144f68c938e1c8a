"""What a request to `edgembed serve` may ask for, read and checked by pure functions: each
returns a typed request or raises `ApiError`, which the app (app.py) answers in OpenAI's
error shape. No web framework is imported here."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import codes
from ..encoder import KINDS
from ..errors import EdgembedError

ENCODING_FORMATS = ("float", "base64")
MAX_RESCORE = 64
EMBEDDING_FIELDS = ("input", "model", "encoding_format", "dimensions", "precision", "kind",
                    "prompt_name", "prompt", "user")
SEARCH_FIELDS = ("query", "k", "rescore", "mode", "keyword_syntax", "folder", "file_types",
                 "snippets", "prompt_name", "prompt", "model", "user")
SEARCH_MODES = ("hybrid", "dense", "keyword")
# Token ids carry no name of the tokenizer that made them (OpenAI clients send tiktoken's),
# and most id sequences of another tokenizer decode and re-encode unchanged in the package's
# WordPiece vocabulary, so no check can tell them apart: embedding them would embed the
# wrong text. They are refused, naming the client setting that sends text instead.
TOKEN_ARRAYS = ("; token arrays are not accepted, since the server cannot know which "
                "tokenizer made them: send text (with LangChain's OpenAIEmbeddings, set "
                "check_embedding_ctx_length=False)")


@dataclass(frozen=True)
class Limits:
    """What one request, and the server as a whole, may ask for."""

    max_body_bytes: int = 4 * 1024 * 1024  # OpenAI's 2048 inputs of ~2 kB each fit
    max_inputs: int = 2048  # texts per request, as OpenAI
    max_k: int = 1000  # search results per query
    max_batch: int = 64  # texts the worker gathers into one encode call
    batch_wait_ms: float = 2.0  # how long the worker waits for more texts
    max_queue: int = 16384  # texts waiting to be encoded before new requests get 503
    max_connections: int = 512  # concurrent connections before uvicorn answers 503
    body_timeout: float = 30.0  # seconds to receive a request body (408)

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            low = 0 if name == "batch_wait_ms" else 1
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                    low <= value < float("inf")):
                raise EdgembedError(f"{name} must be a number >= {low}, got {value!r}")


class ApiError(Exception):
    """An error answered to the client in OpenAI's shape."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 saying what is wrong with it (strict JSON: no NaN)."""
    if not raw.strip():
        raise ApiError(400, "the request body is empty; send a JSON object")
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, "the request body nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, huge integers
        raise ApiError(400, f"the request body is not valid JSON: {short(str(exc))}") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {_json_type(data)}")
    return data


def short(text: str, limit: int = 200) -> str:
    """`text`, cut at `limit` characters: error messages quote what the client sent."""
    return text if len(text) <= limit else text[:limit] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _check_fields(body: dict[str, Any], allowed: Sequence[str]) -> None:
    for name in body:
        if name not in allowed:
            raise ApiError(400, f"unknown field {short(name, 60)!r}; accepted: "
                           f"{', '.join(allowed)}", param=short(name, 60),
                           code="unknown_parameter")


def _optional_str(body: dict[str, Any], name: str) -> None:
    if name in body and body[name] is not None and not isinstance(body[name], str):
        raise ApiError(400, f"{name} must be a string, got {_json_type(body[name])}", param=name)


def _choice(body: dict[str, Any], name: str, choices: Sequence[str], default: str) -> str:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, str) or value not in choices:
        shown = repr(short(value, 60)) if isinstance(value, str) else _json_type(value)
        raise ApiError(400, f"{name} must be one of {', '.join(choices)}; got {shown}",
                       param=name, code="invalid_value")
    return value


def _integer(body: dict[str, Any], name: str, default: int | None, low: int, high: int,
             ) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"{name} must be an integer, got {_json_type(value)}", param=name)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be between {low} and {high}, got "
                       f"{short(str(value), 30)}", param=name, code="invalid_value")
    return value


def _texts(body: dict[str, Any], name: str, max_inputs: int) -> list[str]:
    """A str or a non-empty list of str; token arrays (lists of ints) are refused by name."""
    if name not in body or body[name] is None:
        raise ApiError(400, f"{name} is required: a string or a list of strings", param=name,
                       code="missing_required_parameter")
    value = body[name]
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise ApiError(400, f"{name} must be a string or a list of strings, got "
                       f"{_json_type(value)}", param=name)
    if not value:
        raise ApiError(400, f"{name} must not be an empty list", param=name)
    if len(value) > max_inputs:
        raise ApiError(400, f"{name} has {len(value)} items; at most {max_inputs} per request",
                       param=name, code="too_many_inputs")
    for position, item in enumerate(value):
        if not isinstance(item, str):
            tokens = isinstance(item, (int, list)) and not isinstance(item, bool)
            raise ApiError(400, f"{name}[{position}] is {_json_type(item)}, expected a "
                           f"string{TOKEN_ARRAYS if tokens else ''}",
                           param=f"{name}[{position}]",
                           code="token_arrays_unsupported" if tokens else None)
    return value


# (kind, prompt_name, prompt) -> the text put before every input: `Encoder.resolve_prompt`
PromptResolver = Callable[[str | None, str | None, str | None], str]


def _prompt(body: dict[str, Any], resolve: PromptResolver, kind: str | None) -> str:
    """The text put before the request's inputs, from its `kind`, `prompt_name` or `prompt`
    (at most one), else from `kind`, the endpoint's default."""
    _optional_str(body, "prompt_name")
    _optional_str(body, "prompt")
    prompt_name, prompt = body.get("prompt_name"), body.get("prompt")
    if prompt_name is not None or prompt is not None:
        kind = None
    if "kind" in body:
        kind = _choice(body, "kind", KINDS, None)
    try:
        return resolve(kind, prompt_name, prompt)
    except EdgembedError as exc:
        param = "prompt_name" if prompt_name is not None else "prompt"
        raise ApiError(400, str(exc), param=param, code="invalid_value") from None


@dataclass(frozen=True)
class EmbeddingRequest:
    texts: list[str]
    encoding_format: str
    precision: str
    dimensions: int | None
    prompt: str  # the text put before every input (the kind's prefix, a named prompt, ...)


def parse_embedding_request(body: dict[str, Any], dim: int, limits: Limits,
                            resolve: PromptResolver) -> EmbeddingRequest:
    _check_fields(body, EMBEDDING_FIELDS)
    _optional_str(body, "model")
    _optional_str(body, "user")
    return EmbeddingRequest(
        texts=_texts(body, "input", limits.max_inputs),
        encoding_format=_choice(body, "encoding_format", ENCODING_FORMATS, "float"),
        precision=_choice(body, "precision", codes.PRECISIONS, "float32"),
        dimensions=_integer(body, "dimensions", None, 1, dim),
        prompt=_prompt(body, resolve, None))


def _boolean(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {_json_type(value)}",
                       param=name)
    return value


def _file_types(body: dict[str, Any]) -> tuple[str, ...] | None:
    value = body.get("file_types")
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ApiError(400, "file_types must be a list of suffixes such as \".pdf\"",
                       param="file_types")
    return tuple(value)


@dataclass(frozen=True)
class SearchRequest:
    queries: list[str]
    k: int
    rescore: int
    mode: str = "hybrid"
    keyword_syntax: bool = False
    folder: str | None = None
    file_types: tuple[str, ...] | None = None
    snippets: bool = False
    prompt: str = ""  # the text put before the queries: the query prefix, unless asked


def parse_search_request(body: dict[str, Any], limits: Limits,
                         resolve: PromptResolver) -> SearchRequest:
    _check_fields(body, SEARCH_FIELDS)
    _optional_str(body, "model")
    _optional_str(body, "user")
    _optional_str(body, "folder")
    return SearchRequest(queries=_texts(body, "query", limits.max_inputs),
                         prompt=_prompt(body, resolve, "query"),
                         k=_integer(body, "k", 10, 1, limits.max_k),
                         rescore=_integer(body, "rescore", 4, 0, MAX_RESCORE),
                         mode=_choice(body, "mode", SEARCH_MODES, "hybrid"),
                         keyword_syntax=_boolean(body, "keyword_syntax"),
                         folder=body.get("folder") or None,
                         file_types=_file_types(body),
                         snippets=_boolean(body, "snippets"))
