"""The labelled image set: rendered pictures are deterministic, carry their truth, and the shared
receipts and screenshots join by path with a held-out split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agent.messages import IMAGE_KINDS
from models.image_data import RENDERERS, build_labelled_set, fingerprint, render, shared_images


def test_every_kind_has_a_renderer() -> None:
    assert set(RENDERERS) == set(IMAGE_KINDS)


@pytest.mark.parametrize("kind", IMAGE_KINDS)
def test_rendering_is_deterministic_and_rgb(kind: str) -> None:
    first, again, other = render(kind, 7), render(kind, 7), render(kind, 8)
    assert first.kind == kind and first.image.mode == "RGB"
    assert min(first.image.size) >= 200 and max(first.image.size) <= 1400
    np.testing.assert_array_equal(np.asarray(first.image), np.asarray(again.image))
    assert first.truth == again.truth
    assert first.image.size != other.image.size or not np.array_equal(
        np.asarray(first.image), np.asarray(other.image)
    )


def test_rendered_truth_names_what_was_drawn() -> None:
    receipt = dict(render("receipt", 1).truth)
    assert set(receipt) == {"total", "date", "merchant"}
    assert receipt["total"].replace(".", "").isdigit()
    errors = [dict(render("screenshot", s).truth) for s in range(20)]
    assert any("error_code" in t for t in errors) and any(
        t == {} for t in errors
    )  # error and ordinary screens
    cards = [dict(render("card", s).truth) for s in range(10)]
    assert all(len(t.get("card_last4", "0000")) == 4 for t in cards)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="expected a kind in"):
        render("selfie", 0)


def test_labelled_set_splits_and_fingerprints() -> None:
    items = build_labelled_set(per_kind=8)
    assert len(items) == 8 * len(IMAGE_KINDS)
    test = [it for it in items if it.split == "test"]
    assert len(test) == 2 * len(IMAGE_KINDS)  # every 4th held out
    assert {it.kind for it in test} == set(IMAGE_KINDS)
    assert fingerprint(items) == fingerprint(build_labelled_set(per_kind=8))
    assert fingerprint(items) != fingerprint(build_labelled_set(per_kind=9))
    assert fingerprint(items) != fingerprint(items, extra="vit")
    with pytest.raises(ValueError, match="per_kind must be >= 1"):
        build_labelled_set(per_kind=0)


def test_shared_images_join_by_path(shared_data: Path) -> None:
    folder = shared_data / "images"
    shared = shared_images(folder)
    receipts = [it for it in shared if it.kind == "receipt"]
    screenshots = [it for it in shared if it.kind == "screenshot"]
    if not receipts:
        pytest.skip(f"no receipts under {folder}")
    assert all(it.path is not None and it.path.is_relative_to(folder) for it in shared)  # read in place
    assert len(receipts) == 40 and len(screenshots) == 4
    assert sum(it.split == "test" for it in receipts) == 10
    picture = receipts[0].load()
    assert picture.mode == "RGB" and picture.size[1] > picture.size[0]
    assert screenshots[0].load().mode == "RGB"  # RGBA screenshots flattened
    items = build_labelled_set(per_kind=4, shared_dir=folder)
    assert len(items) == 4 * len(IMAGE_KINDS) + len(shared)
