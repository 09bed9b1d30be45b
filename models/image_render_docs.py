"""Pillow renderers of payment cards (at angles, on surfaces) and documents (letters, statements).

Card digits are random and names invented; see ``models/image_render.py`` for the helpers.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw

from models import image_words as W
from models.image_render import (
    Rendered,
    colour,
    font,
    gradient,
    photo_finish,
    place_on,
    random_date,
    table_background,
    wrap,
)

# --- cards ----------------------------------------------------------------------------------


def _card_face(rng: random.Random) -> tuple[Image.Image, tuple[tuple[str, str], ...]]:
    w = rng.randint(300, 430)
    h = int(w / 1.586)
    face = gradient((w, h), colour(rng, 0, 200), colour(rng, 0, 200))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=int(w * 0.05), fill=255)
    face.putalpha(mask)
    draw = ImageDraw.Draw(face)
    light = (245, 245, 245)
    draw.text(
        (w * 0.07, h * 0.08),
        rng.choice(W.BANKS).upper(),
        font=font(rng, int(h * 0.09), bold=True),
        fill=light,
    )
    draw.rounded_rectangle(
        (w * 0.08, h * 0.32, w * 0.22, h * 0.5), radius=5, fill=(212, 175, 55), outline=(160, 120, 30)
    )
    last4 = f"{rng.randint(0, 9999):04d}"
    masked = rng.random() < 0.6
    groups = ["••••"] * 3 if masked else [f"{rng.randint(0, 9999):04d}" for _ in range(3)]
    number = " ".join(groups + [last4])
    draw.text((w * 0.07, h * 0.56), number, font=font(rng, int(h * 0.1), mono=True), fill=light)
    month, year = rng.randint(1, 12), rng.randint(24, 33)
    draw.text((w * 0.4, h * 0.72), "VALID THRU", font=font(rng, int(h * 0.045)), fill=light)
    draw.text(
        (w * 0.4, h * 0.78), f"{month:02d}/{year}", font=font(rng, int(h * 0.08), mono=True), fill=light
    )
    draw.text((w * 0.07, h * 0.88), rng.choice(W.PEOPLE).upper(), font=font(rng, int(h * 0.065)), fill=light)
    r = h * 0.09
    for dx, fill in ((0, (235, 0, 27)), (r * 1.2, (247, 158, 27))):
        draw.ellipse((w * 0.8 + dx - r, h * 0.8 - r, w * 0.8 + dx + r, h * 0.8 + r), fill=fill)
    return face, (("card_last4", last4), ("expiry", f"{month:02d}/{year}"))


def render_card(rng: random.Random) -> Rendered:
    """A payment card, front (with invented digits) or back, photographed at an angle on a surface."""
    face, truth = _card_face(rng)
    if rng.random() < 0.15:  # the back: magnetic stripe and signature panel
        draw = ImageDraw.Draw(face)
        w, h = face.size
        draw.rectangle((0, h * 0.1, w, h * 0.3), fill=(20, 20, 20))
        draw.rectangle((w * 0.06, h * 0.4, w * 0.7, h * 0.55), fill=(240, 240, 230))
        truth = ()
    canvas = table_background(
        rng, (int(face.size[0] * rng.uniform(1.4, 2.2)), int(face.size[1] * rng.uniform(1.6, 2.6)))
    )
    image = photo_finish(rng, place_on(rng, face, canvas, max_angle=30))
    return Rendered(image=image, kind="card", truth=truth)


# --- documents ------------------------------------------------------------------------------


def render_document(rng: random.Random) -> Rendered:
    """A letter or statement page: letterhead, date, greeting, paragraphs, sometimes a table."""
    width = rng.randint(560, 720)
    height = int(width * 1.414)
    page = Image.new("RGB", (width, height), rng.choice(((255, 255, 255), (252, 250, 245), (245, 245, 245))))
    draw = ImageDraw.Draw(page)
    serif = rng.random() < 0.5
    head, body = (
        font(rng, rng.randint(20, 28), bold=True, serif=serif),
        font(rng, rng.randint(11, 14), serif=serif),
    )
    margin, y = int(width * 0.1), int(height * 0.06)
    draw.text((margin, y), rng.choice(W.BANKS + W.MERCHANTS).title(), font=head, fill=colour(rng, 0, 90))
    y += head.size + 6
    draw.text((margin, y), rng.choice(W.STREETS).title(), font=body, fill=(90, 90, 90))
    d = random_date(rng)
    y += body.size * 3
    draw.text(
        (margin, y),
        d.strftime(rng.choice(("%d %B %Y", "%B %d, %Y", "%d/%m/%Y"))),
        font=body,
        fill=(20, 20, 20),
    )
    y += body.size * 2
    draw.text(
        (margin, y),
        rng.choice(("Dear Customer,", f"Dear {rng.choice(W.PEOPLE)},", "To whom it may concern,")),
        font=body,
        fill=(20, 20, 20),
    )
    y += body.size * 2
    while y < height * 0.85:
        paragraph = " ".join(rng.choice(W.SENTENCES) for _ in range(rng.randint(2, 5)))
        for line in wrap(draw, paragraph, body, width - 2 * margin):
            draw.text((margin, y), line, font=body, fill=(25, 25, 25))
            y += int(body.size * 1.5)
        y += body.size
    draw.text((margin, y), rng.choice(("Yours sincerely,", "Kind regards,")), font=body, fill=(20, 20, 20))
    if rng.random() < 0.4:
        canvas = table_background(rng, (int(width * 1.25), int(height * 1.15)))
        page = photo_finish(rng, place_on(rng, page, canvas, max_angle=8))
    elif rng.random() < 0.5:
        page = page.convert("L").convert("RGB").rotate(rng.uniform(-1.5, 1.5), fillcolor=(235, 235, 235))
    return Rendered(image=page, kind="document", truth=(("date", d.isoformat()),))
