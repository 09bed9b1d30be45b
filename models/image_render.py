"""Pillow renderers of text-bearing pictures: receipts, app screenshots, payment cards, documents.

Every renderer takes a ``random.Random`` and returns a ``Rendered`` picture with the truth it was
drawn with. Numbers on cards are random digits, names and banks are invented.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from models import image_words as W


@dataclass(frozen=True, slots=True, kw_only=True)
class Rendered:
    image: Image.Image  # RGB
    kind: str
    truth: tuple[tuple[str, str], ...] = ()


# --- fonts and helpers ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def font_files() -> tuple[Path, ...]:
    """TrueType fonts used for rendering: matplotlib's bundled DejaVu (always installed) and
    Debian's Liberation fonts where present."""
    import matplotlib

    bundled = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    names = (
        "DejaVuSans.ttf",
        "DejaVuSans-Bold.ttf",
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSerif.ttf",
        "DejaVuSerif-Bold.ttf",
    )
    found = [bundled / n for n in names if (bundled / n).is_file()]
    system = Path("/usr/share/fonts/truetype/liberation")
    for n in (
        "LiberationSans-Regular.ttf",
        "LiberationSans-Bold.ttf",
        "LiberationMono-Regular.ttf",
        "LiberationSerif-Regular.ttf",
    ):
        if (system / n).is_file():
            found.append(system / n)
    return tuple(found)


def _pick_font(rng: random.Random, *, mono: bool = False, bold: bool = False, serif: bool = False) -> Path:
    files = font_files()
    wanted = [
        f
        for f in files
        if ("Mono" in f.name) == mono and ("Bold" in f.name) == bold and ("Serif" in f.name) == serif
    ]
    return rng.choice(wanted or list(files))


@lru_cache(maxsize=256)
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def font(rng: random.Random, size: int, **style: bool) -> ImageFont.FreeTypeFont:
    return _font(_pick_font(rng, **style), max(6, int(size)))


def text_width(draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.FreeTypeFont) -> float:
    return draw.textlength(text, font=fnt)


def colour(rng: random.Random, lo: int = 0, hi: int = 255) -> tuple[int, int, int]:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def gradient(size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image.Image:
    """A vertical two-colour gradient, RGB."""
    column = Image.new("RGB", (1, size[1]))
    for y in range(size[1]):
        t = y / max(1, size[1] - 1)
        column.putpixel((0, y), tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    return column.resize(size)


def noise_image(rng: random.Random, size: tuple[int, int], sigma: float) -> Image.Image:
    """Grey Gaussian noise around 128, seeded from ``rng`` (PIL's effect_noise is not seedable)."""
    values = np.random.default_rng(rng.getrandbits(32)).normal(128.0, sigma, (size[1], size[0]))
    return Image.fromarray(values.clip(0, 255).astype(np.uint8)).convert("RGB")


def table_background(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    """A surface to lay things on: wood grain, cloth noise, or a plain desk colour."""
    style = rng.choice(("wood", "noise", "plain", "gradient"))
    base = colour(rng, 40, 220)
    if style == "gradient":
        return gradient(size, base, colour(rng, 40, 220))
    image = Image.new("RGB", size, base)
    if style == "wood":
        draw = ImageDraw.Draw(image)
        period = rng.uniform(6, 20)
        for y in range(size[1]):
            shade = int(18 * math.sin(y / period + 3 * math.sin(y / 57.0)))
            draw.line([(0, y), (size[0], y)], fill=tuple(max(0, min(255, c + shade)) for c in base))
    elif style == "noise":
        image = Image.blend(image, noise_image(rng, size, rng.uniform(10, 40)), 0.25)
    return image


def photo_finish(rng: random.Random, image: Image.Image) -> Image.Image:
    """Camera-like degradation: slight blur, brightness change, sensor noise."""
    if rng.random() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 1.0)))
    if rng.random() < 0.5:
        image = Image.blend(image, noise_image(rng, image.size, rng.uniform(5, 25)), rng.uniform(0.03, 0.1))
    factor = rng.uniform(0.8, 1.1)
    return image.point(lambda v: max(0, min(255, int(v * factor))))


def place_on(
    rng: random.Random, item: Image.Image, background: Image.Image, *, max_angle: float
) -> Image.Image:
    """Rotate ``item`` by up to ``max_angle`` degrees and paste it, with a soft shadow, on ``background``."""
    rgba = item.convert("RGBA").rotate(
        rng.uniform(-max_angle, max_angle), expand=True, resample=Image.BICUBIC
    )
    scale = min(1.0, 0.92 * background.size[0] / rgba.size[0], 0.92 * background.size[1] / rgba.size[1])
    if scale < 1.0:
        rgba = rgba.resize((max(1, int(rgba.size[0] * scale)), max(1, int(rgba.size[1] * scale))))
    x = rng.randint(0, max(0, background.size[0] - rgba.size[0]))
    y = rng.randint(0, max(0, background.size[1] - rgba.size[1]))
    shadow = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
    shadow.putalpha(rgba.getchannel("A").point(lambda a: a // 3))
    out = background.copy()
    out.paste(
        shadow.filter(ImageFilter.GaussianBlur(6)), (x + 6, y + 8), shadow.filter(ImageFilter.GaussianBlur(6))
    )
    out.paste(rgba, (x, y), rgba)
    return out


def random_date(rng: random.Random) -> date:
    return date(2017, 1, 1) + timedelta(days=rng.randint(0, 3650))


def format_date(rng: random.Random, d: date) -> str:
    style = rng.choice(("dmy/", "dmy-", "dmy.", "d mon y", "iso", "dmy/"))
    if style == "d mon y":
        return f"{d.day:02d} {d.strftime('%b').upper()} {d.year}"
    if style == "iso":
        return d.isoformat()
    sep = style[-1]
    year = str(d.year) if rng.random() < 0.7 else f"{d.year % 100:02d}"
    return f"{d.day:02d}{sep}{d.month:02d}{sep}{year}"


# --- receipts -------------------------------------------------------------------------------


def render_receipt(rng: random.Random) -> Rendered:
    """A till receipt: merchant, address, date, items, total, cash, change; scanned or photographed."""
    width = rng.randint(300, 420)
    size = rng.randint(13, 17)
    body, bold = font(rng, size, mono=True), font(rng, size, mono=True, bold=True)
    lines, truth = _receipt_lines(rng)
    line_h = int(size * 1.45)
    paper = Image.new(
        "RGB",
        (width, 30 + line_h * len(lines)),
        rng.choice(((255, 255, 255), (250, 247, 238), (244, 244, 240))),
    )
    draw = ImageDraw.Draw(paper)
    ink = colour(rng, 0, 70)
    for i, (left, right, strong) in enumerate(lines):
        fnt, y = (bold if strong else body), 15 + i * line_h
        if right:
            draw.text((12, y), left, font=fnt, fill=ink)
            draw.text((width - 12 - text_width(draw, right, fnt), y), right, font=fnt, fill=ink)
        else:
            draw.text(((width - text_width(draw, left[:44], fnt)) / 2, y), left[:44], font=fnt, fill=ink)
    if rng.random() < 0.5:
        canvas = table_background(
            rng, (int(paper.size[0] * rng.uniform(1.3, 1.8)), int(paper.size[1] * rng.uniform(1.05, 1.25)))
        )
        paper = photo_finish(rng, place_on(rng, paper, canvas, max_angle=6))
    return Rendered(image=paper, kind="receipt", truth=truth)


def _receipt_lines(rng: random.Random) -> tuple[list[tuple[str, str, bool]], tuple[tuple[str, str], ...]]:
    """The receipt's rows as (left text, right-aligned amount, bold), and its truth."""
    merchant = rng.choice(W.MERCHANTS)
    d = random_date(rng)
    items = [
        (rng.choice(W.ITEMS), rng.randint(1, 3), rng.randint(50, 4000) / 100)
        for _ in range(rng.randint(2, 8))
    ]
    subtotal = sum(q * p for _, q, p in items)
    tax = round(subtotal * rng.choice((0.0, 0.06, 0.2)), 2)
    total = round(subtotal + tax, 2)
    cash = max(total, float(math.ceil(total / 10) * 10 if rng.random() < 0.7 else total))
    lines: list[tuple[str, str, bool]] = [
        (merchant, "", True),
        (rng.choice(W.STREETS), "", False),
        (f"Tel: 0{rng.randint(10, 99)}-{rng.randint(1000000, 9999999)}", "", False),
        (rng.choice(("TAX INVOICE", "CASH BILL", "RECEIPT", "SALES RECEIPT")), "", True),
        (f"Date: {format_date(rng, d)}", f"{rng.randint(8, 21)}:{rng.randint(0, 59):02d}", False),
        ("-" * 40, "", False),
    ]
    lines += [(f"{q} x {name}"[:24], f"{q * p:.2f}", False) for name, q, p in items]
    lines += [("-" * 40, "", False), ("SUBTOTAL", f"{subtotal:.2f}", False)]
    if tax:
        lines.append(("TAX", f"{tax:.2f}", False))
    total_label = rng.choice(("TOTAL", "TOTAL:", "Total (RM)", "TOTAL DUE", "Grand Total", "Total Amount"))
    currency = rng.choice(("", "RM", "$", "£"))
    lines += [
        (total_label, f"{currency}{total:.2f}", True),
        ("CASH", f"{cash:.2f}", False),
        ("CHANGE", f"{cash - total:.2f}", False),
        ("", "", False),
        (rng.choice(W.FOOTERS), "", False),
    ]
    return lines, (("total", f"{total:.2f}"), ("date", d.isoformat()), ("merchant", merchant))


# --- screenshots ----------------------------------------------------------------------------


def _theme(rng: random.Random) -> dict[str, tuple[int, int, int]]:
    dark = rng.random() < 0.3
    return {
        "bg": colour(rng, 10, 40) if dark else colour(rng, 235, 255),
        "fg": colour(rng, 220, 255) if dark else colour(rng, 10, 60),
        "muted": (150, 150, 160) if dark else (110, 110, 120),
        "brand": colour(rng, 20, 200),
        "error": (rng.randint(190, 240), rng.randint(20, 70), rng.randint(30, 80)),
    }


def wrap(draw: ImageDraw.ImageDraw, text: str, fnt: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines, current = [], ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and text_width(draw, trial, fnt) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    return lines + ([current] if current else [])


def _screen_frame(
    rng: random.Random, theme: dict[str, tuple[int, int, int]]
) -> tuple[Image.Image, ImageDraw.ImageDraw, int]:
    """A phone or web canvas with a status bar and an app bar naming the bank; returns the y below."""
    phone = rng.random() < 0.6
    size = (
        (rng.randint(340, 420), rng.randint(680, 860))
        if phone
        else (rng.randint(800, 1100), rng.randint(560, 760))
    )
    image = Image.new("RGB", size, theme["bg"])
    draw = ImageDraw.Draw(image)
    y = 0
    if phone:
        small = font(rng, 14, bold=True)
        draw.text((18, 8), f"{rng.randint(7, 22)}:{rng.randint(0, 59):02d}", font=small, fill=theme["fg"])
        draw.rectangle((size[0] - 44, 12, size[0] - 18, 22), outline=theme["fg"], width=2)
        y = 34
    bar_h = rng.randint(48, 64)
    draw.rectangle((0, y, size[0], y + bar_h), fill=theme["brand"])
    draw.text(
        (20, y + bar_h / 2 - 11), rng.choice(W.BANKS), font=font(rng, 20, bold=True), fill=(255, 255, 255)
    )
    return image, draw, y + bar_h


def render_screenshot(rng: random.Random) -> Rendered:
    """A banking-app screen: an error (70%) or an ordinary balance/transactions screen."""
    if rng.random() < 0.7:
        return _render_error_screen(rng)
    return _render_account_screen(rng)


def _render_error_screen(rng: random.Random) -> Rendered:
    theme = _theme(rng)
    image, draw, top = _screen_frame(rng, theme)
    width, height = image.size
    headline, code = rng.choice(W.ERROR_HEADLINES), rng.choice(W.error_codes(rng))
    amount = f"{rng.randint(5, 2500)}.{rng.randint(0, 99):02d}"
    detail = rng.choice(W.ERROR_DETAILS).format(
        amount=f"{rng.choice('£$€')}{amount}", name=rng.choice(W.PEOPLE)
    )
    cx, y = width / 2, top + rng.randint(40, 110)
    r = rng.randint(26, 40)
    draw.ellipse((cx - r, y, cx + r, y + 2 * r), fill=theme["error"])
    draw.text((cx - r / 4, y + r / 3), "!", font=font(rng, int(r * 1.2), bold=True), fill=(255, 255, 255))
    y += 2 * r + 28
    big = font(rng, rng.randint(22, 30), bold=True)
    for line in wrap(draw, headline, big, width - 40):
        draw.text((cx - text_width(draw, line, big) / 2, y), line, font=big, fill=theme["fg"])
        y += big.size + 8
    body = font(rng, rng.randint(15, 18))
    for line in wrap(draw, detail, body, width - 60):
        draw.text((cx - text_width(draw, line, body) / 2, y + 10), line, font=body, fill=theme["muted"])
        y += body.size + 6
    code_text = rng.choice(("Error code: {c}", "Error {c}", "Code: {c}", "({c})", "Ref: {c}")).format(c=code)
    small = font(rng, 14)
    draw.text(
        (cx - text_width(draw, code_text, small) / 2, y + 24), code_text, font=small, fill=theme["muted"]
    )
    button = rng.choice(("Try again", "Contact support", "OK", "Back to accounts"))
    bw, by = min(width - 40, 260), min(height - 70, y + 80)
    draw.rounded_rectangle((cx - bw / 2, by, cx + bw / 2, by + 46), radius=10, fill=theme["brand"])
    bf = font(rng, 17, bold=True)
    draw.text((cx - text_width(draw, button, bf) / 2, by + 12), button, font=bf, fill=(255, 255, 255))
    truth = (("error_message", headline), ("error_code", code.upper()))
    return Rendered(image=image, kind="screenshot", truth=truth)


def _render_account_screen(rng: random.Random) -> Rendered:
    theme = _theme(rng)
    image, draw, top = _screen_frame(rng, theme)
    width, height = image.size
    y = top + 24
    draw.text(
        (20, y),
        rng.choice(("Current account", "Everyday account", "Savings", "Balance")),
        font=font(rng, 16),
        fill=theme["muted"],
    )
    draw.text(
        (20, y + 24),
        f"£{rng.randint(0, 9999):,}.{rng.randint(0, 99):02d}",
        font=font(rng, 32, bold=True),
        fill=theme["fg"],
    )
    y += 90
    row = font(rng, 16)
    while y < height - 60:
        d = random_date(rng)
        name, amount = (
            rng.choice(W.MERCHANTS).title()[:22],
            f"-£{rng.randint(1, 300)}.{rng.randint(0, 99):02d}",
        )
        draw.text((20, y), name, font=row, fill=theme["fg"])
        draw.text((20, y + 20), d.strftime("%d %b"), font=font(rng, 12), fill=theme["muted"])
        draw.text((width - 20 - text_width(draw, amount, row), y), amount, font=row, fill=theme["fg"])
        draw.line((20, y + 44, width - 20, y + 44), fill=theme["muted"])
        y += 56
    return Rendered(image=image, kind="screenshot")
