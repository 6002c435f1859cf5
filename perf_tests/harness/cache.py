"""The on-disk artifact cache: content-keyed folders, built once, atomically, under a file lock.

An artifact is a folder named ``<name>-<key>``, where the key hashes everything that decides its
content (model fingerprint, variant settings, library versions). A build writes into a private
temporary folder and renames it into place only once ``artifact.json`` is written, so a run that
is killed half-way never leaves a folder that a later run would load. Concurrent runs wait on the
lock and then reuse what the first one built.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from filelock import FileLock

from perf_tests.harness.progress import outline

MARKER = "artifact.json"
LIBRARIES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime")


def library_versions(names=LIBRARIES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return versions


def content_key(parts: dict) -> str:
    """A short stable hash of a JSON-able description of an artifact."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def hash_files(folder: Path, patterns=("*",)) -> str:
    """Hash the names and bytes of the files in a folder (a model's identity)."""
    digest = hashlib.sha256()
    files = sorted({p for pattern in patterns for p in folder.glob(pattern) if p.is_file()})
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class ArtifactCache:
    def __init__(self, root: Path, log=None):
        self.root = Path(root)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.built: list[str] = []
        self.reused: list[str] = []

    def folder(self, name: str, parts: dict) -> Path:
        return self.root / f"{name}-{content_key(parts)}"

    def get_or_build(self, name: str, parts: dict, build: Callable[[Path], dict | None]) -> Path:
        """Return the folder of a complete artifact, building it first if there is none."""
        final = self.folder(name, parts)
        if (final / MARKER).is_file():
            return self._reuse(name, final)
        self.root.mkdir(parents=True, exist_ok=True)
        locks = self.root / ".locks"
        locks.mkdir(exist_ok=True)
        with FileLock(str(locks / f"{final.name}.lock")):
            if (final / MARKER).is_file():  # another run built it while we waited
                return self._reuse(name, final)
            self._clear_leftovers(final)
            work = self.root / f".tmp-{final.name}-{os.getpid()}"
            work.mkdir()
            try:
                with outline(f"building {name} (artifact {final.name})") as step:
                    details = build(work) or {}
                record = {"name": name, "parts": parts, "details": details,
                          "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                          "build_seconds": round(step.seconds, 2)}
                (work / MARKER).write_text(json.dumps(record, indent=2, default=str) + "\n")
                os.rename(work, final)
            finally:
                shutil.rmtree(work, ignore_errors=True)
        self.built.append(name)
        return final

    def record(self, folder: Path) -> dict:
        return json.loads((folder / MARKER).read_text())

    def _reuse(self, name: str, final: Path) -> Path:
        built_at = self.record(final).get("built_at", "?")
        self.log(f"= reusing {name} (artifact {final.name}, built {built_at}): nothing rebuilt")
        self.reused.append(name)
        return final

    def _clear_leftovers(self, final: Path) -> None:
        """Remove what a killed build left: its temporary folders, or a folder with no marker."""
        for leftover in self.root.glob(f".tmp-{final.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():
            shutil.rmtree(final)
