"""The on-disk artifact cache: content-keyed folders, built once, atomically, under a file lock.

An artifact is a folder named ``<name>-<key>``, where the key hashes everything that decides its
content (model fingerprint, variant settings, library versions). A build writes into a private
temporary folder and renames it into place only once ``artifact.json`` is written, so a run that
is killed half-way never leaves a folder that a later run would load. Concurrent runs wait on the
lock and then reuse what the first one built.

Every reuse is verified against the sizes and content hashes recorded at build time (see
``integrity``); a damaged artifact, one from before those records, or one that fails to load
(``discard``) is reported in one line and built again, under the same lock.
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

from perf_tests.harness import integrity
from perf_tests.harness.progress import outline

MARKER = "artifact.json"
USED = ".used"  # root/.used/<artifact folder name>: touched on every build and reuse (see prune)
LIBRARIES = ("torch", "transformers", "optimum", "optimum-onnx", "onnx", "onnxruntime",
             "ctranslate2")


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


def _identity(marker: Path) -> tuple[int, int] | None:
    """Which marker file this is (inode, mtime), or None when there is none: tells whether the
    artifact found damaged before waiting on the lock is still the one there after it."""
    try:
        stat = marker.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns


class ArtifactError(Exception):
    """A cached artifact cannot be used even after it was built again: one line."""


class ArtifactCache:
    def __init__(self, root: Path, log=None):
        self.root = Path(root)
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.built: list[str] = []
        self.reused: list[str] = []
        self.rebuilt: list[str] = []  # found damaged, unverifiable or unloadable, built again
        self.verified_bytes = 0  # bytes hashed to verify reused artifacts this session
        # folders built in this session, here or by a prebuild helper: found again, they are
        # neither verified nor counted as reused (their files were just hashed by the build)
        self.fresh: set[str] = set()

    def folder(self, name: str, parts: dict) -> Path:
        return self.root / f"{name}-{content_key(parts)}"

    def owns(self, folder: Path) -> bool:
        return Path(folder).parent == self.root and (Path(folder) / MARKER).is_file()

    def get_or_build(self, name: str, parts: dict, build: Callable[[Path], dict | None]) -> Path:
        """Return the folder of a complete, verified artifact, building it first if there is none
        or if the one there is damaged."""
        final = self.folder(name, parts)
        problem, seen = "", _identity(final / MARKER)
        if seen is not None and final.name in self.fresh:
            self._mark_used(final)
            return final
        if seen is not None:
            # marked wanted before it is verified, not after: a prune that listed it as unused
            # looks again under its build lock, and must see it wanted from now on
            self._mark_used(final)
            problem = self._problem(final)
            if not problem:
                return self._reuse(name, final)
        self.root.mkdir(parents=True, exist_ok=True)
        locks = self.root / ".locks"
        locks.mkdir(exist_ok=True)
        with FileLock(str(locks / f"{final.name}.lock")):
            now = _identity(final / MARKER)
            if now is not None and now != seen:  # another run built it while we waited
                problem = self._problem(final)
                if not problem:
                    return self._reuse(name, final)
            if now is not None:
                self.log(f"! {name} (artifact {final.name}) {problem}: building it again")
                self.rebuilt.append(name)
            self._clear_leftovers(final)
            self._build(name, parts, build, final)
        self.built.append(name)
        self.fresh.add(final.name)
        self._mark_used(final)
        return final

    def adopt(self, built: list[str], fresh: list[str], rebuilt: list[str]) -> None:
        """Count what another process built for this session (prebuild's helper) as built here."""
        self.built += built
        self.rebuilt += rebuilt
        self.fresh |= set(fresh)

    def discard(self, folder: Path, reason: str) -> None:
        """Remove an artifact that cannot be used (it fails to load), so that the next
        ``get_or_build`` builds it again."""
        folder = Path(folder)
        name = folder.name.rpartition("-")[0]  # without its key, as built and reused list it
        self.log(f"! {name} (artifact {folder.name}) {reason}: building it again")
        self.rebuilt.append(name)
        self.fresh.discard(folder.name)
        with FileLock(str(self.root / ".locks" / f"{folder.name}.lock")):
            self._clear_leftovers(folder)

    def record(self, folder: Path) -> dict:
        return json.loads((folder / MARKER).read_text())

    def _build(self, name: str, parts: dict, build, final: Path) -> None:
        work = self.root / f".tmp-{final.name}-{os.getpid()}"
        work.mkdir()
        try:
            with outline(f"building {name} (artifact {final.name})") as step:
                details = build(work) or {}
                files = integrity.manifest(work, {MARKER})
            record = {"name": name, "parts": parts, "details": details,
                      "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "build_seconds": round(step.seconds, 2),
                      "integrity": {"algorithm": integrity.ALGORITHM, "files": files}}
            (work / MARKER).write_text(json.dumps(record, indent=2, default=str) + "\n")
            os.rename(work, final)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _problem(self, final: Path) -> str:
        """"" when the artifact matches its build-time record, else what is wrong, in words."""
        try:
            record = self.record(final)
        except (OSError, ValueError):
            return f"has an unreadable {MARKER}"
        if not isinstance(record, dict) or not isinstance(record.get("integrity") or {}, dict):
            return f"has a damaged {MARKER}"
        recorded = record.get("integrity") or {}
        if recorded.get("algorithm") != integrity.ALGORITHM or "files" not in recorded:
            return (f"was built before sizes and {integrity.ALGORITHM} hashes were recorded, so "
                    "it cannot be verified")
        if not integrity.is_manifest(recorded["files"]):
            return f"has a damaged {MARKER} (its record of the files)"
        problem, hashed = integrity.check(final, recorded["files"])
        self.verified_bytes += hashed
        return f"is damaged: {problem}" if problem else ""

    def _reuse(self, name: str, final: Path) -> Path:
        built_at = self.record(final).get("built_at", "?")
        self.log(f"= reusing {name} (artifact {final.name}, built {built_at}, verified): "
                 "nothing rebuilt")
        self.reused.append(name)
        self._mark_used(final)
        return final

    def _mark_used(self, final: Path) -> None:
        """When an artifact was last wanted, kept beside it, never inside (its files are hashed)."""
        used = self.root / USED
        used.mkdir(exist_ok=True)
        (used / final.name).touch()

    def _clear_leftovers(self, final: Path) -> None:
        """Remove what a killed build left (its temporary folders, a folder with no marker) or a
        damaged artifact: renamed aside first, so no reader ever sees it half removed."""
        for leftover in self.root.glob(f".tmp-{final.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        if final.exists():
            aside = self.root / f".tmp-{final.name}-removed-{os.getpid()}"
            os.rename(final, aside)
            shutil.rmtree(aside, ignore_errors=True)
