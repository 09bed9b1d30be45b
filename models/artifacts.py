"""Model directories written whole or not at all: build in a temporary sibling, then rename."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import InvalidInput

META_FILE = "nlu.json"  # written last: its presence marks a complete model directory


def check_out_dir(out_dir: Path, *, meta_file: str = META_FILE, what: str = "model directory") -> Path:
    """InvalidInput unless ``out_dir`` is new, empty, or a ``what`` (marked by ``meta_file``, which may
    be replaced). Called before training too, so a bad path fails at once, not after the training."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / meta_file).exists())):
        raise InvalidInput(f"output {out_dir}: exists and is not a {what}; expected a new or "
                           f"empty path, or a {what} to replace")
    return out_dir


@contextmanager
def atomic_dir(out_dir: Path, *, meta_file: str = META_FILE, what: str = "model directory") -> Iterator[Path]:
    """Yield an empty temporary directory next to ``out_dir``; on success (``meta_file`` written)
    it replaces ``out_dir`` (a previous one there is removed), on error it is deleted."""
    out_dir = check_out_dir(out_dir, meta_file=meta_file, what=what)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.parent / f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        if not (tmp / meta_file).exists():
            raise RuntimeError(f"{what} is incomplete: {meta_file} was not written")
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}"
            out_dir.rename(old)
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n", encoding="utf-8")


def _default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
