"""Raw option text -> checked values: numbers in a range, lists without repeats, writable folders.

Every failure is a ``ConfigError`` of one line that names the option, what was wrong and what to
pass instead; the plugin turns it into a usage error (exit code 4) before anything is built. A new
option reuses these helpers instead of calling ``int()`` or ``float()`` on raw text: a bare
``int("two")`` raised inside ``pytest_configure`` is an INTERNALERROR traceback, not a message.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(Exception):
    """Bad input, found before anything was built: one line, what was wrong and what to do."""


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric option; ``None`` leaves a side open, ``*_open`` excludes the bound."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def describe(self) -> str:
        parts = []
        if self.low is not None:
            parts.append(f"{'above' if self.low_open else 'at least'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'below' if self.high_open else 'at most'} {self.high:g}")
        return " and ".join(parts) or "any number"


def number(option: str, text, kind: type = int, *, default=None, bounds: Range = Range()):
    """``text`` (None or "" for the default) as an int or a float within ``bounds``.

    ``option`` is how the user names it in a message, e.g. ``--perf-threads``.
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return default
    noun = "a whole number" if kind is int else "a number"
    try:
        value = kind(str(text).strip())
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not {noun}: pass {noun} "
                          f"{bounds.describe()}") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{option} {text!r} is not a finite number: pass {noun} "
                          f"{bounds.describe()}")
    if not bounds.holds(value):
        raise ConfigError(f"{option} {text} is out of range: pass {noun} {bounds.describe()}")
    return value


def argument(kind: type, bounds: Range):
    """An argparse ``type`` for the command-line tools: the same checks as the gate's options,
    argparse's one-line usage error (exit 2) where they fail."""
    import argparse

    def parse(text: str):
        try:
            return number("", text, kind, bounds=bounds)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error).strip()) from None
    return parse


def path_argument(what: str):
    """An argparse ``type`` for a tool's path: ``path_of``'s checks (``~`` expanded, a name this
    system cannot take refused), argparse's one-line usage error where they fail. argparse
    passes a string default through it too (prune's PERF_CACHE_DIR)."""
    import argparse

    def parse(text: str) -> Path:
        try:
            return path_of(text, what)
        except ConfigError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return parse


def unique(option: str, items, key=lambda item: item) -> tuple:
    """``items`` as a tuple, refusing one given twice (a repeated shape or variant would be
    measured twice under one test id and overwrite its own history entry)."""
    seen = {}
    for item in items:
        name = key(item)
        if name in seen:
            raise ConfigError(f"{option} lists {name} twice: give each once")
        seen[name] = item
    return tuple(seen.values())


def path_of(text, what: str, base: Path | None = None) -> Path:
    """``text`` as an absolute path, ``~`` expanded, a relative one taken from ``base`` (the
    working folder by default); one line where this system cannot take it (an unknown
    ``~user``, a symlink loop, a name too long, a NUL), not a traceback from a later check."""
    try:
        path = (Path(base or ".") / Path(text).expanduser()).resolve()
        path.exists()  # a name too long raises here, where a later is_file() would
    except (OSError, RuntimeError, ValueError) as error:
        reason = (getattr(error, "strerror", None) or str(error) or type(error).__name__).rstrip(".")
        shown = text if str(text).isprintable() else repr(str(text))
        raise ConfigError(f"{what} {shown}: {reason}; pass a path this system can open") from None
    return path


def writable_dir(path: Path, what: str) -> Path:
    """The folder, checked writable by creating and removing a probe file in it, or in its first
    existing ancestor when it is still to be made; nothing is left behind.

    Permission bits do not tell: root passes every ``os.access`` check yet cannot write to a
    read-only mount, and ACLs or quotas refuse what the bits allow.
    """
    path = path_of(path, what)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path} is a file, not a folder: pass a writable folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{what} {path} cannot be created: {existing} is a file")
    probe = existing / f".perf-gate-probe-{os.getpid()}"
    try:
        descriptor = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        os.close(descriptor)
        probe.unlink()
    except OSError as error:
        checked = "" if existing == path else f" (tried {existing}, where it would be made)"
        raise ConfigError(f"{what} {path} is not writable{checked}: {error.strerror}; pass a "
                          "writable folder") from None
    return path
