"""Safe path resolution: nothing the user says can reach outside the search folders.

A path from a user is always relative to one of the configured folders. It is
refused when it is absolute (``/etc``, ``C:\\``, ``~``), climbs (any ``..``
part) or, once symlinks are resolved, lands outside every folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath

_DRIVE = re.compile(r"^[a-zA-Z]:")


class PathRefused(ValueError):
    """The path points outside the search folders; ``str()`` is a sentence for the user."""


class SafePaths:
    """The search folders, resolved once, and checks against them."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(r).expanduser().resolve() for r in roots]

    def root_of(self, path: Path) -> Path | None:
        """The folder that really contains ``path`` (after resolving symlinks), or None."""
        try:
            real = path.resolve(strict=False)
        except (OSError, RuntimeError):  # symlink loops
            return None
        for root in self.roots:
            if real == root or real.is_relative_to(root):
                return root
        return None

    def contains(self, path: Path) -> bool:
        return self.root_of(path) is not None

    @staticmethod
    def looks_like_path(text: str) -> bool:
        """A query with a separator, a leading ``~`` or a drive letter is a path, not words."""
        t = text.strip()
        return "/" in t or "\\" in t or t.startswith("~") or bool(_DRIVE.match(t)) or t in {".", ".."}

    def resolve(self, user_path: str) -> Path:
        """The existing file or folder ``user_path`` names inside a search folder.

        Raises :class:`PathRefused` for escapes and :class:`FileNotFoundError`
        when it is safe but does not exist.
        """
        text = user_path.strip()
        if not text or "\x00" in text:
            raise PathRefused("That is not a file name I can look up.")
        if (
            text.startswith(("/", "\\", "~"))
            or _DRIVE.match(text)
            or PurePosixPath(text).is_absolute()
            or PureWindowsPath(text).is_absolute()
        ):
            raise PathRefused("I can only look inside your search folders, not at absolute paths.")
        parts = re.split(r"[\\/]+", text)
        if ".." in parts:
            raise PathRefused("I can only look inside your search folders, so I can't follow '..'.")
        clean = [p for p in parts if p not in ("", ".")]
        relative = Path(*clean) if clean else Path(".")
        escaped = False
        for root in self.roots:
            candidate = root / relative
            if not (candidate.exists() or candidate.is_symlink()):
                continue
            if self.contains(candidate):
                return candidate.resolve()
            escaped = True  # it exists, but a symlink leads outside
        if escaped:
            raise PathRefused("That file links outside your search folders, so I won't open it.")
        raise FileNotFoundError(user_path)
