"""Paths from config or the API, resolved and confined to configured roots.

A path is accepted only when its fully resolved form (symlinks followed) lies inside one of
the resolved roots, so `..`, absolute paths elsewhere and symlinks that escape are refused.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from fluxora.data.errors import DataSourceError, UnsafePathError


def resolve_roots(roots: Iterable[str], base: Path) -> list[Path]:
    """Roots relative to `base` (the project root), resolved."""
    out = [(base / r).expanduser().resolve() for r in roots if r]
    if not out:
        raise UnsafePathError("no allowed data roots are configured (data.roots is empty)")
    return out


def confine(path: str | Path, roots: Iterable[str], base: Path) -> Path:
    """Resolve `path` (relative to `base`) and return it if it lies inside one of `roots`."""
    allowed = resolve_roots(roots, base)
    raw = Path(path).expanduser()
    resolved = (raw if raw.is_absolute() else base / raw).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in allowed):
        shown = ", ".join(str(r) for r in allowed)
        raise UnsafePathError(
            f"path {str(path)!r} resolves outside the allowed data roots ({shown}); add its folder to data.roots"
        )
    return resolved


def expand_inputs(pattern: str, roots: Iterable[str], base: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files named by a file path, a folder (its files with `suffixes`) or a glob, each confined to the roots."""
    if not pattern:
        raise DataSourceError("data.path is empty; set it to a CSV/Parquet file, a folder or a glob")
    roots = list(roots)
    if any(ch in pattern for ch in "*?["):
        full = pattern if Path(pattern).is_absolute() else str(base / pattern)
        candidates = [Path(p) for p in sorted(glob.glob(full, recursive=True))]
        files = [confine(p, roots, base) for p in candidates if p.is_file()]
    else:
        target = confine(pattern, roots, base)
        if target.is_dir():
            found = [p for p in sorted(target.rglob("*")) if p.is_file() and p.name.lower().endswith(suffixes)]
            files = [confine(p, roots, base) for p in found]
        elif target.is_file():
            files = [target]
        else:
            raise DataSourceError(f"data.path {pattern!r} does not exist")
    if not files:
        raise DataSourceError(f"data.path {pattern!r} matches no {'/'.join(suffixes)} files")
    return files
