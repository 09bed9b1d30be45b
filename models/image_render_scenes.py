"""Pillow renderers of pictures without much text: product photos and other scenes.

Product photos: one object (parcel box, bottle, mug, phone, ball, shoe, headphones) with shading
and a floor shadow on a studio backdrop, sometimes damaged (cracks, dents). Other: landscapes,
patterns, cartoon faces, abstract art, night streets.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw, ImageFilter

from models.image_render import Rendered, colour, font, gradient, photo_finish, table_background


def _shade(c: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(v * factor))) for v in c)  # type: ignore[return-value]


def _backdrop(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    if rng.random() < 0.6:
        top = colour(rng, 170, 255)
        return gradient(size, top, _shade(top, rng.uniform(0.6, 0.9)))
    return table_background(rng, size)


def _floor_shadow(image: Image.Image, box: tuple[float, float, float, float]) -> None:
    layer = Image.new("L", image.size, 0)
    ImageDraw.Draw(layer).ellipse(box, fill=110)
    image.paste((30, 30, 30), (0, 0), layer.filter(ImageFilter.GaussianBlur(12)))


def _box(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    base = rng.choice(((196, 154, 108), (180, 140, 95), colour(rng, 60, 230)))
    d = s * 0.35
    front = [(cx - s, cy - s * 0.4), (cx + s * 0.5, cy - s * 0.4), (cx + s * 0.5, cy + s), (cx - s, cy + s)]
    top = [
        (cx - s, cy - s * 0.4),
        (cx - s + d, cy - s * 0.4 - d),
        (cx + s * 0.5 + d, cy - s * 0.4 - d),
        (cx + s * 0.5, cy - s * 0.4),
    ]
    side = [
        (cx + s * 0.5, cy - s * 0.4),
        (cx + s * 0.5 + d, cy - s * 0.4 - d),
        (cx + s * 0.5 + d, cy + s - d),
        (cx + s * 0.5, cy + s),
    ]
    draw.polygon(front, fill=base)
    draw.polygon(top, fill=_shade(base, 1.15))
    draw.polygon(side, fill=_shade(base, 0.75))
    draw.rectangle((cx - s * 0.3, cy - s * 0.4, cx - s * 0.15, cy + s), fill=_shade(base, 0.9))  # tape
    if rng.random() < 0.5:
        draw.text(
            (cx - s * 0.85, cy + s * 0.3),
            rng.choice(("FRAGILE", "THIS WAY UP", "")),
            font=font(rng, s * 0.18, bold=True),
            fill=(160, 20, 20),
        )


def _bottle(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    body = colour(rng, 20, 230)
    draw.rounded_rectangle((cx - s * 0.4, cy - s * 0.5, cx + s * 0.4, cy + s), radius=s * 0.2, fill=body)
    draw.rectangle((cx - s * 0.15, cy - s * 1.0, cx + s * 0.15, cy - s * 0.45), fill=body)
    draw.rectangle((cx - s * 0.18, cy - s * 1.15, cx + s * 0.18, cy - s * 0.95), fill=colour(rng, 0, 255))
    draw.rectangle((cx - s * 0.4, cy, cx + s * 0.4, cy + s * 0.45), fill=colour(rng, 200, 255))
    draw.rectangle((cx - s * 0.3, cy - s * 0.4, cx - s * 0.2, cy + s * 0.9), fill=_shade(body, 1.3))


def _mug(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    body = colour(rng, 30, 240)
    draw.ellipse(
        (cx + s * 0.3, cy - s * 0.3, cx + s * 0.95, cy + s * 0.5), outline=body, width=int(s * 0.12) + 1
    )
    draw.rectangle((cx - s * 0.6, cy - s * 0.5, cx + s * 0.5, cy + s * 0.8), fill=body)
    draw.ellipse((cx - s * 0.6, cy - s * 0.65, cx + s * 0.5, cy - s * 0.35), fill=_shade(body, 0.6))
    draw.ellipse((cx - s * 0.6, cy + s * 0.65, cx + s * 0.5, cy + s * 0.95), fill=body)


def _phone(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    draw.rounded_rectangle(
        (cx - s * 0.5, cy - s, cx + s * 0.5, cy + s), radius=s * 0.12, fill=colour(rng, 10, 60)
    )
    draw.rounded_rectangle(
        (cx - s * 0.44, cy - s * 0.9, cx + s * 0.44, cy + s * 0.9), radius=s * 0.06, fill=colour(rng, 0, 40)
    )
    draw.polygon([(cx - s * 0.44, cy - s * 0.9), (cx, cy - s * 0.9), (cx - s * 0.44, cy)], fill=(70, 70, 80))
    if rng.random() < 0.5:  # a cracked screen
        x, y = cx + rng.uniform(-s * 0.3, s * 0.3), cy + rng.uniform(-s * 0.5, s * 0.5)
        for _ in range(7):
            a = rng.uniform(0, 2 * math.pi)
            draw.line(
                (x, y, x + math.cos(a) * s * 0.6, y + math.sin(a) * s * 0.8), fill=(220, 220, 230), width=1
            )


def _ball(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    base = colour(rng, 40, 255)
    for i in range(12, 0, -1):
        r = s * i / 12
        off = s * (12 - i) / 40
        draw.ellipse(
            (cx - r - off, cy - r - off, cx + r - off, cy + r - off),
            fill=_shade(base, 0.6 + 0.6 * (12 - i) / 12),
        )


def _shoe(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    body = colour(rng, 20, 240)
    draw.polygon(
        [
            (cx - s, cy + s * 0.5),
            (cx - s, cy - s * 0.2),
            (cx - s * 0.3, cy - s * 0.3),
            (cx + s * 0.2, cy + s * 0.1),
            (cx + s, cy + s * 0.2),
            (cx + s * 1.05, cy + s * 0.5),
        ],
        fill=body,
    )
    draw.rectangle((cx - s, cy + s * 0.5, cx + s * 1.05, cy + s * 0.65), fill=(245, 245, 245))
    for i in range(4):
        x = cx - s * 0.2 + i * s * 0.12
        draw.line(
            (x, cy - s * 0.15 + i * s * 0.05, x + s * 0.1, cy - s * 0.05 + i * s * 0.05),
            fill=(250, 250, 250),
            width=2,
        )


def _headphones(draw: ImageDraw.ImageDraw, rng: random.Random, cx: float, cy: float, s: float) -> None:
    body = colour(rng, 10, 200)
    draw.arc((cx - s * 0.8, cy - s, cx + s * 0.8, cy + s * 0.6), 180, 360, fill=body, width=int(s * 0.12) + 1)
    for side in (-1, 1):
        x = cx + side * s * 0.8
        draw.rounded_rectangle(
            (x - s * 0.22, cy - s * 0.1, x + s * 0.22, cy + s * 0.55), radius=s * 0.1, fill=body
        )


PRODUCTS = {
    "box": _box,
    "bottle": _bottle,
    "mug": _mug,
    "phone": _phone,
    "ball": _ball,
    "shoe": _shoe,
    "headphones": _headphones,
}


def render_product_photo(rng: random.Random) -> Rendered:
    """One product on a backdrop, with a floor shadow and camera-like finish."""
    size = (rng.randint(360, 640), rng.randint(360, 640))
    image = _backdrop(rng, size)
    cx, cy = size[0] * rng.uniform(0.4, 0.6), size[1] * rng.uniform(0.42, 0.58)
    s = min(size) * rng.uniform(0.2, 0.32)
    _floor_shadow(image, (cx - s * 1.1, cy + s * 0.85, cx + s * 1.2, cy + s * 1.2))
    name = rng.choice(sorted(PRODUCTS))
    PRODUCTS[name](ImageDraw.Draw(image), rng, cx, cy, s)
    return Rendered(image=photo_finish(rng, image), kind="product_photo", truth=(("object", name),))


# --- other ----------------------------------------------------------------------------------


def _landscape(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    image = gradient(size, colour(rng, 60, 200), colour(rng, 180, 255))
    draw = ImageDraw.Draw(image)
    if rng.random() < 0.7:
        r = rng.uniform(20, 50)
        x, y = rng.uniform(r, w - r), rng.uniform(r, h * 0.4)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, rng.randint(200, 250), rng.randint(80, 200)))
    for layer in range(rng.randint(2, 4)):
        base = h * (0.45 + 0.12 * layer)
        points = [(0, h)] + [(x, base - rng.uniform(0, h * 0.2)) for x in range(0, w + 40, 40)] + [(w, h)]
        draw.polygon(points, fill=_shade(colour(rng, 30, 140), 0.7 + 0.1 * layer))
    return image


def _pattern(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, colour(rng))
    draw = ImageDraw.Draw(image)
    step = rng.randint(12, 60)
    kind = rng.choice(("stripes", "checks", "dots"))
    other = colour(rng)
    for i in range(0, max(size) * 2, step):
        if kind == "stripes":
            draw.line((i, 0, i - size[1], size[1]), fill=other, width=step // 2)
        else:
            for j in range(0, max(size), step):
                if kind == "checks" and (i // step + j // step) % 2 == 0:
                    draw.rectangle((i, j, i + step, j + step), fill=other)
                elif kind == "dots":
                    draw.ellipse((i, j, i + step / 2, j + step / 2), fill=other)
    return image


def _face(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    image = _backdrop(rng, size)
    draw = ImageDraw.Draw(image)
    w, h = size
    skin = rng.choice(((255, 220, 185), (225, 180, 140), (170, 120, 85), (120, 80, 55)))
    cx, cy, r = w / 2, h / 2, min(size) * 0.3
    draw.ellipse((cx - r * 1.1, cy + r * 0.9, cx + r * 1.1, cy + r * 2.5), fill=colour(rng, 0, 200))
    draw.ellipse((cx - r, cy - r * 1.15, cx + r, cy + r * 1.05), fill=colour(rng, 10, 90))
    draw.ellipse((cx - r * 0.85, cy - r, cx + r * 0.85, cy + r), fill=skin)
    for side in (-1, 1):
        draw.ellipse(
            (cx + side * r * 0.35 - 8, cy - r * 0.2 - 6, cx + side * r * 0.35 + 8, cy - r * 0.2 + 6),
            fill=(40, 30, 30),
        )
    draw.arc((cx - r * 0.4, cy + r * 0.1, cx + r * 0.4, cy + r * 0.55), 20, 160, fill=(150, 50, 50), width=4)
    return image


def _abstract(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    image = Image.new("RGB", size, colour(rng))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(5, 25)):
        x, y, r = rng.uniform(0, size[0]), rng.uniform(0, size[1]), rng.uniform(10, min(size) / 3)
        shape = rng.choice(("ellipse", "rectangle", "line"))
        if shape == "line":
            draw.line(
                (x, y, x + rng.uniform(-r, r) * 3, y + rng.uniform(-r, r) * 3),
                fill=colour(rng),
                width=rng.randint(2, 12),
            )
        else:
            getattr(draw, shape)((x - r, y - r, x + r, y + r), fill=colour(rng))
    return image


def _night_street(rng: random.Random, size: tuple[int, int]) -> Image.Image:
    w, h = size
    image = gradient(size, (10, 10, 40), (40, 30, 60))
    draw = ImageDraw.Draw(image)
    x = 0
    while x < w:
        bw, bh = rng.uniform(40, 120), rng.uniform(h * 0.3, h * 0.8)
        draw.rectangle((x, h - bh, x + bw, h), fill=colour(rng, 15, 45))
        for wx in range(int(x) + 6, int(x + bw) - 8, 14):
            for wy in range(int(h - bh) + 8, h - 10, 18):
                if rng.random() < 0.4:
                    draw.rectangle((wx, wy, wx + 6, wy + 8), fill=(250, rng.randint(200, 240), 120))
        x += bw + rng.uniform(2, 10)
    return image


SCENES = {
    "landscape": _landscape,
    "pattern": _pattern,
    "face": _face,
    "abstract": _abstract,
    "night": _night_street,
}


def render_other(rng: random.Random) -> Rendered:
    """A picture of something else: a landscape, a pattern, a face, abstract art or a night street."""
    size = (rng.randint(360, 720), rng.randint(300, 640))
    name = rng.choice(sorted(SCENES))
    image = SCENES[name](rng, size)
    return Rendered(image=photo_finish(rng, image), kind="other", truth=(("scene", name),))
