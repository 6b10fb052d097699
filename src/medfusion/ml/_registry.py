"""A folder of versioned models: ``<root>/<name>/v<version>/`` with model, metadata and files.

A save writes everything into a hidden temporary folder under ``root`` and renames it
into place in one step, so a failure (or a crash) never leaves a half-written version
that ``list`` would show. Models are stored with joblib (pickle): load only
registries you trust.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib

from medfusion.errors import InvalidRequestError, NotFoundError

__all__ = ["ModelRecord", "Registry"]

_REF = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*?)(?:@v(?P<version>\d+))?$")
MODEL_FILE, METADATA_FILE = "model.joblib", "metadata.json"


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """One saved model version.

    Attributes
    ----------
    model_id
        ``<name>@v<version>``: what ``predict`` / ``evaluate`` / ``models show`` accept
        (a bare ``<name>`` means its latest version).
    path
        Folder of this version.
    metadata
        The content of ``metadata.json``.
    """

    model_id: str
    name: str
    version: int
    path: Path
    metadata: dict[str, Any]


class Registry:
    """Versioned model store in a folder.

    Parameters
    ----------
    root
        Registry folder; created on the first save.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _versions(self, name: str) -> list[int]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(int(p.name[1:]) for p in folder.iterdir() if re.fullmatch(r"v\d+", p.name))

    def save(
        self,
        *,
        name: str,
        model: Any,
        metadata: Mapping[str, Any],
        files: Callable[[dict[str, Any]], Mapping[str, bytes]] | None = None,
    ) -> ModelRecord:
        """Store a new version of ``name`` atomically and return its record.

        ``metadata`` gets ``model_id``, ``name`` and ``version`` added; ``files`` is
        called with that final metadata (cards name the model id) and maps relative
        paths (e.g. ``plots/roc.png``) to their bytes.
        """
        if not _REF.match(name) or "@" in name:
            raise InvalidRequestError(f"model name {name!r} must be letters, digits, '.', '_' or '-'")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            joblib.dump(model, staging / MODEL_FILE)
            (self.root / name).mkdir(exist_ok=True)
            for _ in range(100):  # another process may take the same version number first
                version = (self._versions(name) or [0])[-1] + 1
                record = dict(metadata, model_id=f"{name}@v{version}", name=name, version=version)
                (staging / METADATA_FILE).write_text(json.dumps(record, indent=2, default=str))
                for relative, content in (files(record) if files else {}).items():
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(content)
                try:
                    os.rename(staging, self.root / name / f"v{version}")
                except OSError:
                    continue
                return ModelRecord(
                    record["model_id"], name, version, self.root / name / f"v{version}", record
                )
            raise OSError(f"could not reserve a version folder for {name}")
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def get(self, ref: str) -> ModelRecord:
        """The record of ``name@vN`` or of the latest version of ``name``.

        Raises
        ------
        NotFoundError
            No such model or version.
        """
        match = _REF.match(ref)
        if match is None:
            raise NotFoundError(f"model id {ref!r} is not of the form NAME or NAME@vN")
        name = match["name"]
        versions = self._versions(name)
        if not versions:
            raise NotFoundError(f"no model {name!r} in the registry at {self.root}")
        version = int(match["version"]) if match["version"] else versions[-1]
        if version not in versions:
            raise NotFoundError(f"model {name!r} has no version {version} (versions: {versions})")
        path = self.root / name / f"v{version}"
        metadata = json.loads((path / METADATA_FILE).read_text())
        return ModelRecord(f"{name}@v{version}", name, version, path, metadata)

    def load(self, ref: str) -> tuple[Any, ModelRecord]:
        """The fitted estimator and record of a model version."""
        record = self.get(ref)
        return joblib.load(record.path / MODEL_FILE), record

    def list(self) -> list[ModelRecord]:
        """Every stored version, ordered by name and version."""
        if not self.root.is_dir():
            return []
        records: list[ModelRecord] = []
        for folder in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            records.extend(self.get(f"{folder.name}@v{v}") for v in self._versions(folder.name))
        return records
