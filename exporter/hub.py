"""Hugging Face Hub ids as export sources.

`edgembed export ORG/NAME[@REVISION]` downloads the model with huggingface_hub into its
usual cache (HF_HOME, HF_HUB_CACHE; HF_ENDPOINT for a mirror) and exports the snapshot
folder. Only what an export reads is fetched: the JSON and text files, the
sentence-transformers module folders and one weights file (safetensors, else the PyTorch
pickle), not the ONNX, OpenVINO or TensorFlow copies many repositories also hold. The commit
the revision resolved to is recorded in the manifest. Offline (HF_HUB_OFFLINE=1, or no
network), a cached snapshot is used; without one, the error is one line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from edgembed.errors import ExportError
from edgembed.extras import require

from .st_modules import WEIGHT_FILES

# what an export reads; weights come separately (one file, see module docstring)
SNAPSHOT_FILES = ["*.json", "*.txt", "*.model", "[0-9]_*/*"]
# org/name[@revision], as the Hub spells repository ids (no further slashes before "@")
_HUB_ID = re.compile(r"(?P<repo>[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@(?P<rev>[\w./-]+))?")


@dataclass(frozen=True)
class HubSnapshot:
    """A downloaded (or cached) Hub snapshot: the folder to export and where it came from."""

    repo_id: str
    revision: str | None  # as asked for (a branch, tag or commit); None: the default branch
    commit: str  # the commit it resolved to
    path: Path

    @property
    def name(self) -> str:
        return self.repo_id.rsplit("/", 1)[-1]


def parse_hub_id(text: str) -> tuple[str, str | None] | None:
    """(repo id, revision or None) if `text` reads as a Hub id, else None."""
    match = _HUB_ID.fullmatch(text)
    return (match["repo"], match["rev"]) if match else None


def is_hub_id(source: str | Path) -> bool:
    """A source is a Hub id when it is not an existing path and reads as org/name[@rev]."""
    return isinstance(source, str) and not Path(source).expanduser().exists() \
        and parse_hub_id(source) is not None


def download(source: str) -> HubSnapshot:
    """The snapshot of Hub id `source` (org/name[@revision]) in the Hub cache, downloaded
    if needed. Every failure is one ExportError line saying what to do."""
    parsed = parse_hub_id(source)
    if parsed is None:
        raise ExportError(f"{source!r} is neither a model folder nor a Hub id (org/name or "
                          "org/name@revision)")
    repo_id, revision = parsed
    require("huggingface_hub", "export")
    from huggingface_hub import snapshot_download

    with _hub_errors(repo_id, revision):
        folder = Path(snapshot_download(repo_id, revision=revision,
                                        allow_patterns=[*SNAPSHOT_FILES, WEIGHT_FILES[0]]))
        if not any((folder / name).is_file() for name in WEIGHT_FILES):
            folder = Path(snapshot_download(repo_id, revision=folder.name,
                                            allow_patterns=[WEIGHT_FILES[1]]))
    return HubSnapshot(repo_id=repo_id, revision=revision, commit=folder.name, path=folder)


@contextmanager
def _hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """huggingface_hub's and requests' exceptions as one ExportError line."""
    try:
        yield
    except ExportError:
        raise
    except Exception as exc:  # whatever the download raised: one line
        raise ExportError(_message(exc, repo_id, revision)) from None


def _message(exc: Exception, repo_id: str, revision: str | None) -> str:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    name = repo_id + (f"@{revision}" if revision else "")
    if isinstance(exc, LocalEntryNotFoundError):
        why = "HF_HUB_OFFLINE=1 is set" if constants.HF_HUB_OFFLINE \
            else f"the Hub ({constants.ENDPOINT}) cannot be reached"
        return (f"cannot get {name}: no such local folder, it is not in the Hugging Face "
                f"cache ({constants.HF_HUB_CACHE}), and {why}; download it once online, or "
                "check the folder's path")
    if isinstance(exc, GatedRepoError):
        return (f"{repo_id} is gated on the Hub: accept its terms on the model page "
                "and log in (hf auth login), or export a local folder")
    if isinstance(exc, RevisionNotFoundError):
        return f"the Hub model {repo_id} has no revision {revision!r}"
    if isinstance(exc, RepositoryNotFoundError):
        return (f"{repo_id} is not a local folder, and the Hub has no model of that "
                "name (or it is private: log in with hf auth login)")
    if isinstance(exc, HFValidationError):
        return f"{name!r} is not a valid Hub id: {_first_line(exc)}"
    return f"cannot download {name} from the Hub: {_first_line(exc)}"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
