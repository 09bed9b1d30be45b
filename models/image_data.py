"""The labelled image set for the image-kind head: pictures rendered with Pillow, plus shared data.

Rendered kinds (``render(kind, seed)``, deterministic for a seed and the installed fonts):
receipts (thermal till slips, scanned or photographed), screenshots (banking-app error screens in
phone and web layouts, light and dark, and ordinary app screens), cards (payment cards at angles
on table-like backgrounds), documents (letters and statements), product photos (boxes, bottles,
mugs, phones, balls, shoes on studio backdrops) and other (landscapes, patterns, faces, abstract
art). Each carries the truth it was drawn with (``("total", "12.50")``, ``("error_code", "E102")``)
so OCR and field reading can be checked on it. ``build_labelled_set`` adds the receipts and
screenshots under ``../shared/data/images`` when given their folder (read by path, never copied).
The renderers live in ``models/image_render*.py``; this module names, splits and loads them.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from agent.messages import IMAGE_KINDS
from models import image_render as R
from models import image_render_docs as D
from models import image_render_scenes as S

RENDER_VERSION = 1  # bump when a renderer changes, so cached heads are retrained

RENDERERS: dict[str, Callable[[random.Random], R.Rendered]] = {
    "receipt": R.render_receipt,
    "screenshot": R.render_screenshot,
    "card": D.render_card,
    "document": D.render_document,
    "product_photo": S.render_product_photo,
    "other": S.render_other,
}


def render(kind: str, seed: int) -> R.Rendered:
    """One rendered picture of ``kind``; the same seed gives the same picture."""
    if kind not in RENDERERS:
        raise ValueError(f"render: expected a kind in {sorted(RENDERERS)}, got {kind!r}")
    rng = random.Random(f"{kind}:{seed}")
    return RENDERERS[kind](rng)


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelledImage:
    """One example: rendered (``seed`` set) or a shared file (``path`` set)."""

    kind: str
    split: str  # "train" | "test"
    source: str  # "rendered" | "shared"
    seed: int | None = None
    path: Path | None = None

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.seed}" if self.path is None else str(self.path)

    def load(self) -> Image.Image:
        """The picture as RGB."""
        if self.path is not None:
            with Image.open(self.path) as image:
                image.load()
                if image.mode in ("RGBA", "LA", "P"):
                    rgba = image.convert("RGBA")
                    background = Image.new("RGB", rgba.size, (255, 255, 255))
                    background.paste(rgba, mask=rgba.getchannel("A"))
                    return background
                return image.convert("RGB")
        assert self.seed is not None
        return render(self.kind, self.seed).image


def _split(index: int, test_every: int) -> str:
    return "test" if index % test_every == test_every - 1 else "train"


def shared_images(shared_dir: Path, *, test_every: int = 4) -> tuple[LabelledImage, ...]:
    """The shared receipts (``receipts/*.jpg``) and screenshots (``screenshots/*.png``), split by index."""
    out: list[LabelledImage] = []
    for kind, folder, pattern in (("receipt", "receipts", "*.jpg"), ("screenshot", "screenshots", "*.png")):
        for i, path in enumerate(sorted((shared_dir / folder).glob(pattern))):
            out.append(LabelledImage(kind=kind, split=_split(i, test_every), source="shared", path=path))
    return tuple(out)


def build_labelled_set(
    *, per_kind: int, seed: int = 0, shared_dir: Path | None = None, test_every: int = 4
) -> tuple[LabelledImage, ...]:
    """``per_kind`` rendered pictures of every kind (every ``test_every``-th held out for testing),
    plus the shared images when ``shared_dir`` (``.../shared/data/images``) exists."""
    if per_kind < 1:
        raise ValueError(f"build_labelled_set: per_kind must be >= 1, got {per_kind}")
    items = [
        LabelledImage(kind=kind, split=_split(i, test_every), source="rendered", seed=seed * 100_000 + i)
        for kind in IMAGE_KINDS
        for i in range(per_kind)
    ]
    if shared_dir is not None and shared_dir.is_dir():
        items.extend(shared_images(shared_dir, test_every=test_every))
    return tuple(items)


def fingerprint(items: tuple[LabelledImage, ...], *, extra: str = "") -> str:
    """A short hash naming a labelled set (kinds, seeds, shared files' names and sizes, renderer
    version, fonts), used as the key of a cached head."""
    parts = [f"render:{RENDER_VERSION}", f"fonts:{','.join(p.name for p in R.font_files())}", extra]
    for item in items:
        size = item.path.stat().st_size if item.path is not None else 0
        parts.append(f"{item.kind}|{item.split}|{item.name}|{size}")
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def receipt_keys(shared_dir: Path) -> tuple[tuple[Path, dict[str, str | None]], ...]:
    """The shared receipts with their keys normalised like ``read_fields`` output: ``total``
    ("8.20" for "$8.20"; None where the key has none), ``date`` (ISO), ``merchant``."""
    from models.image_fields import parse_amounts, parse_dates

    out = []
    for path in sorted((shared_dir / "receipts").glob("*.jpg")):
        key = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        amounts = parse_amounts(str(key.get("total", "")).replace("$", ""))
        dates = parse_dates(str(key.get("date", "")))
        out.append(
            (
                path,
                {
                    "total": f"{amounts[0]:.2f}" if amounts else None,
                    "date": dates[0] if dates else None,
                    "merchant": key.get("company"),
                },
            )
        )
    return tuple(out)
