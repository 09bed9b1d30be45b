"""OCR with RapidOCR's PP-OCRv4: rendered text is read with boxes in the image's own pixels, and
receipts from the shared data give their totals and dates (a subset here; all 40 in
benchmarks/bench_image.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from agent.interfaces import TextRecognizer
from modalities.image import image_from_pil, load_image
from models.image_data import receipt_keys
from models.image_fields import read_fields
from models.image_render import font_files
from models.ocr import OcrSettings, RapidOcrRecognizer

pytestmark = pytest.mark.slow


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text).lower()


def text_picture(size: tuple[int, int], lines: list[tuple[str, tuple[int, int], int]]) -> Image.Image:
    from PIL import ImageFont

    picture = Image.new("RGB", size, (250, 250, 250))
    draw = ImageDraw.Draw(picture)
    sans = next(p for p in font_files() if p.name == "DejaVuSans.ttf")
    for text, xy, size_px in lines:
        draw.text(xy, text, font=ImageFont.truetype(str(sans), size_px), fill=(20, 20, 20))
    return picture


@pytest.fixture(scope="module")
def ocr() -> RapidOcrRecognizer:
    return RapidOcrRecognizer()


def test_reads_rendered_text_top_to_bottom_with_boxes_and_confidences(ocr: RapidOcrRecognizer) -> None:
    assert isinstance(ocr, TextRecognizer)
    picture = text_picture(
        (640, 260),
        [
            ("Transfer failed", (40, 30), 40),
            ("Total 12.50", (40, 110), 28),
            ("Error code: E102", (40, 180), 28),
        ],
    )
    lines = ocr.read(image_from_pil(picture))
    text = squash(" ".join(line.text for line in lines))
    assert "transferfailed" in text and "total12.50" in text and "errorcode:e102" in text
    assert squash(lines[0].text) == "transferfailed"
    for line in lines:
        assert 0.5 <= line.confidence <= 1.0
        assert len(line.box) == 4
        assert all(0 <= x <= 640 and 0 <= y <= 260 for x, y in line.box)
    top = lines[0].box
    assert top[0][1] < 40 < top[2][1]  # the first line's box spans y = 30..70


def test_boxes_are_in_the_original_pixels_when_the_image_is_downscaled() -> None:
    reader = RapidOcrRecognizer(OcrSettings(max_side_px=1000, det_limit_side_px=960))
    picture = text_picture((3000, 1200), [("PAYMENT DECLINED", (1800, 600), 90)])
    lines = reader.read(image_from_pil(picture))
    assert squash(lines[0].text) == "paymentdeclined"
    xs, ys = [p[0] for p in lines[0].box], [p[1] for p in lines[0].box]
    assert 1700 < min(xs) < 1900 and 580 < min(ys) < 720  # where it was drawn, at full scale


def test_an_image_without_text_gives_no_lines(ocr: RapidOcrRecognizer) -> None:
    assert ocr.read(image_from_pil(Image.new("RGB", (300, 200), (90, 140, 200)))) == ()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="det_limit_side_px must be in"):
        OcrSettings(det_limit_side_px=10)
    with pytest.raises(ValueError, match="max_side_px .* must be >= det_limit_side_px"):
        OcrSettings(max_side_px=500, det_limit_side_px=960)


def test_receipt_totals_and_dates_on_shared_receipts(ocr: RapidOcrRecognizer, shared_data: Path) -> None:
    keys = receipt_keys(shared_data / "images")
    if len(keys) < 40:
        pytest.skip(f"expected 40 shared receipts, found {len(keys)}")
    subset = keys[::5]  # 8 receipts: 000, 005, ..., 035
    totals = dates = 0
    for path, key in subset:
        picture = load_image(path.read_bytes(), max_bytes=10_000_000, max_pixels=40_000_000)
        fields = dict(read_fields(ocr.read(picture), kind="receipt"))
        totals += fields.get("total") == key["total"]
        dates += fields.get("date") == key["date"]
    # Measured: 8/8 totals and 8/8 dates on this subset (all 40: benchmarks/README.md, image section).
    assert totals >= 7 and dates >= 7, f"totals {totals}/8, dates {dates}/8"


def test_recognition_on_two_workers_reads_what_one_worker_reads(ocr: RapidOcrRecognizer) -> None:
    assert ocr.settings.rec_workers == 2
    rows = [(f"Item {i:02d} coffee beans {i * 3}.25", (30, 20 + 34 * i), 22) for i in range(14)]
    picture = image_from_pil(text_picture((620, 520), rows))
    single = RapidOcrRecognizer(OcrSettings(rec_workers=1))
    try:
        ours, theirs = ocr.read(picture), single.read(picture)
    finally:
        single.close()
    assert len(ours) >= 12  # more lines than one batch, so several workers took part
    assert [line.text for line in ours] == [line.text for line in theirs]
    assert [line.box for line in ours] == [line.box for line in theirs]
    assert "item05coffeebeans15.25" in {squash(line.text) for line in ours}


def test_the_detector_input_limit_is_honoured() -> None:
    # RapidOCR 1.4.4 picks its own limit (960/1500/2000 px) when the limit type is "max"; ours wins
    reader = RapidOcrRecognizer(OcrSettings(max_side_px=2000, det_limit_side_px=640, rec_workers=1))
    try:
        preprocess = reader._engine.text_det.get_preprocess(1800)
        assert (preprocess.limit_side_len, preprocess.limit_type) == (640, "max")
        picture = text_picture((1800, 900), [("REFUND APPROVED", (300, 380), 110)])
        lines = reader.read(image_from_pil(picture))
        assert squash(lines[0].text) == "refundapproved"
        xs = [p[0] for p in lines[0].box]
        assert 250 < min(xs) < 350  # boxes come back in the image's own pixels
    finally:
        reader.close()


def test_worker_and_batch_settings_are_checked() -> None:
    with pytest.raises(ValueError, match=r"rec_workers must be in \[1, 16\], got 0"):
        OcrSettings(rec_workers=0)
    with pytest.raises(ValueError, match=r"rec_batch must be in \[1, 64\], got 0"):
        OcrSettings(rec_batch=0)
