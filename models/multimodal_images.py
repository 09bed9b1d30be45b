"""Pictures that decide an intent, and pictures that do not, for the multimodal set.

A short message such as "what is this?" says little alone; the picture sent with it decides:

| picture type      | what is drawn                                                       | intent              |
|-------------------|---------------------------------------------------------------------|---------------------|
| ``receipt_sale``  | a till receipt for a card purchase                                  | dispute_charge      |
| ``receipt_refund``| a refund / return slip: negative amounts, a red REFUNDED stamp       | refund_request      |
| ``screen_transfer``| a banking-app error screen about a transfer (recipient, amount)    | failed_transfer     |
| ``screen_declined``| an error screen about a card payment at a merchant (card icon)     | declined_payment    |
| ``screen_login``  | a sign-in screen with an error (passcode boxes, padlock)            | app_login_problem   |
| ``card_new``      | a new card stuck on its carrier letter ("activate your card")       | activate_card       |
| ``card_back``     | the back of a card: stripe, signature panel, lost-or-stolen helpline | lost_or_stolen_card |

Pictures that decide nothing (``IRRELEVANT_TYPES``) come from the image-kind renderers of
``models.image_data``: product photos, other scenes, letters, ordinary card photos.

Wordings come in three disjoint pools (``train``, ``val``, ``test``), so evaluation reads
headlines and messages that training never saw. Everything is drawn with Pillow from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from PIL import Image, ImageDraw

from models import image_render as R
from models import image_words as W
from models.image_data import render as render_kind

DECIDING_TYPES: dict[str, str] = {
    "receipt_sale": "dispute_charge",
    "receipt_refund": "refund_request",
    "screen_transfer": "failed_transfer",
    "screen_declined": "declined_payment",
    "screen_login": "app_login_problem",
    "card_new": "activate_card",
    "card_back": "lost_or_stolen_card",
}
IRRELEVANT_TYPES: dict[str, str] = {"product_photo": "product_photo", "other": "other", "document": "document",
                                    "card_photo": "card"}  # picture type -> image kind
IMAGE_KIND_OF: dict[str, str] = {
    "receipt_sale": "receipt", "receipt_refund": "receipt", "screen_transfer": "screenshot",
    "screen_declined": "screenshot", "screen_login": "screenshot", "card_new": "card", "card_back": "card",
    **IRRELEVANT_TYPES,
}
SPLITS = ("train", "val", "test")
RENDER_VERSION = 1  # bump when a renderer or wording changes: cached pictures are keyed by it

# Short messages that are ambiguous alone, by family; the families a picture type accepts.
AMBIGUOUS_TEXTS: dict[str, dict[str, tuple[str, ...]]] = {
    "generic": {
        "train": ("what is this?", "can you help me with this?", "what does this mean?", "look at this",
                  "it says this", "please sort this out", "this is the problem", "see the picture",
                  "can you explain this?", "why is this happening?", "help please", "what do I do about this?"),
        "val": ("any idea what this is?", "this one here", "what's going on?"),
        "test": ("what's this about?", "can you check this for me?", "what should I do with this?", "I got this",
                 "this keeps happening", "could you have a look?", "explain this please", "what now?"),
    },
    "money": {
        "train": ("why this charge?", "what about this amount?", "is this right?", "about this payment"),
        "val": ("this amount here",),
        "test": ("why was this taken?", "what is this amount?", "about this money"),
    },
    "card": {
        "train": ("about this card", "what do I do with this card?"),
        "val": ("this card",),
        "test": ("this card here", "it's about this card"),
    },
    "app": {
        "train": ("the app shows this", "I keep getting this screen"),
        "val": ("the app says this",),
        "test": ("my phone says this", "this came up on the app"),
    },
}
FAMILIES: dict[str, tuple[str, ...]] = {
    "receipt_sale": ("generic", "money"), "receipt_refund": ("generic", "money"),
    "screen_transfer": ("generic", "money", "app"), "screen_declined": ("generic", "money", "app"),
    "screen_login": ("generic", "app"), "card_new": ("generic", "card"), "card_back": ("generic", "card"),
}

# Wordings drawn on the pictures, by split (disjoint).
HEADLINES: dict[str, dict[str, tuple[str, ...]]] = {
    "screen_transfer": {"train": ("Transfer failed", "Transfer unsuccessful", "Unable to complete transfer"),
                        "val": ("Transfer not sent",),
                        "test": ("We couldn't send your money", "Payment to payee failed")},
    "screen_declined": {"train": ("Payment declined", "Card payment failed", "Transaction declined"),
                        "val": ("Card declined",),
                        "test": ("Your card was declined", "Purchase not approved")},
    "screen_login": {"train": ("Login failed", "Unable to sign in", "Incorrect passcode"),
                     "val": ("Sign-in error",),
                     "test": ("We couldn't log you in", "Access denied")},
}
DETAILS: dict[str, tuple[str, ...]] = {
    "screen_transfer": ("Your transfer of {amount} to {name} could not be completed.",
                        "The money was not sent to {name}.", "Sending {amount} to {name} did not go through."),
    "screen_declined": ("Your payment of {amount} at {merchant} was declined.",
                        "{merchant} could not take your payment of {amount}.", "The card payment of {amount} failed."),
    "screen_login": ("Check your details and try again.", "Your passcode or password is incorrect.",
                     "Too many attempts. Try again later."),
}
CARRIER_LINES = {"train": ("Your new card is here", "Activate your card in the app"),
                 "val": ("Here is your new card", "Activate it before first use"),
                 "test": ("Welcome to your new card", "Switch on your card to start using it")}
HELPLINE_LINES = {"train": ("To report lost or stolen cards call", "If found please return to"),
                  "val": ("Lost or stolen? Call us on", "If found return to"),
                  "test": ("Report a lost or stolen card on", "This card is the property of")}


def pick_wording(pool: dict[str, tuple[str, ...]], split: str, rng: random.Random) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    return rng.choice(pool[split])


def ambiguous_texts(picture_type: str, split: str) -> tuple[str, ...]:
    """The ambiguous messages of ``split`` that may accompany ``picture_type``."""
    return tuple(t for family in FAMILIES[picture_type] for t in AMBIGUOUS_TEXTS[family][split])


# --- receipts -------------------------------------------------------------------------------


def _receipt_lines(rng: random.Random, refund: bool) -> list[tuple[str, str, bool]]:
    items = [(rng.choice(W.ITEMS), rng.randint(1, 3), rng.randint(50, 4000) / 100) for _ in range(rng.randint(2, 6))]
    total = round(sum(q * p for _, q, p in items), 2)
    sign = "-" if refund else ""
    card = f"**** {rng.randint(0, 9999):04d}"
    header = rng.choice(("REFUND", "RETURN RECEIPT", "CREDIT NOTE")) if refund else rng.choice(
        ("SALES RECEIPT", "TAX INVOICE", "RECEIPT"))
    lines = [(rng.choice(W.MERCHANTS), "", True), (rng.choice(W.STREETS), "", False), (header, "", True),
             (f"Date: {R.format_date(rng, R.random_date(rng))}", f"{rng.randint(8, 21)}:{rng.randint(0, 59):02d}", False),
             ("-" * 40, "", False)]
    lines += [(f"{q} x {name}"[:24], f"{sign}{q * p:.2f}", False) for name, q, p in items]
    lines += [("-" * 40, "", False)]
    if refund:
        lines += [(rng.choice(("REFUND TOTAL", "AMOUNT REFUNDED", "TOTAL RETURNED")), f"-{total:.2f}", True),
                  (f"Refunded to card {card}", "", False), (rng.choice(("Reason: item returned", "Reason: faulty")), "", False)]
    else:
        lines += [(rng.choice(("TOTAL", "TOTAL DUE", "Grand Total")), f"{total:.2f}", True),
                  (rng.choice(("CARD PAYMENT", "VISA DEBIT", "CONTACTLESS")), f"{total:.2f}", False),
                  (f"Card {card}", "", False), ("APPROVED", "", False)]
    return lines + [("", "", False), (rng.choice(W.FOOTERS), "", False)]


def render_receipt(rng: random.Random, *, refund: bool) -> Image.Image:
    """A till receipt (sale) or a refund slip with a red stamp; scanned or photographed."""
    width, size = rng.randint(300, 400), rng.randint(13, 16)
    body, bold = R.font(rng, size, mono=True), R.font(rng, size, mono=True, bold=True)
    lines = _receipt_lines(rng, refund)
    line_h = int(size * 1.45)
    paper = Image.new("RGB", (width, 30 + line_h * len(lines)), rng.choice(((255, 255, 255), (250, 247, 238))))
    draw = ImageDraw.Draw(paper)
    ink = R.colour(rng, 0, 70)
    for i, (left, right, strong) in enumerate(lines):
        fnt, y = (bold if strong else body), 15 + i * line_h
        if right:
            draw.text((12, y), left, font=fnt, fill=ink)
            draw.text((width - 12 - R.text_width(draw, right, fnt), y), right, font=fnt, fill=ink)
        else:
            draw.text(((width - R.text_width(draw, left[:44], fnt)) / 2, y), left[:44], font=fnt, fill=ink)
    if refund:
        _stamp(rng, paper, rng.choice(("REFUNDED", "RETURNED", "REFUND")))
    if rng.random() < 0.5:
        canvas = R.table_background(rng, (int(width * rng.uniform(1.3, 1.7)), int(paper.size[1] * rng.uniform(1.05, 1.2))))
        paper = R.photo_finish(rng, R.place_on(rng, paper, canvas, max_angle=6))
    return paper


def _stamp(rng: random.Random, paper: Image.Image, word: str) -> None:
    """A rotated red rubber stamp pasted onto ``paper`` in place."""
    fnt = R.font(rng, rng.randint(30, 40), bold=True)
    probe = ImageDraw.Draw(paper)
    w, h = int(R.text_width(probe, word, fnt)) + 24, fnt.size + 24
    stamp = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(stamp)
    red = (rng.randint(180, 230), rng.randint(10, 50), rng.randint(20, 60), rng.randint(170, 230))
    d.rectangle((2, 2, w - 3, h - 3), outline=red, width=4)
    d.text((12, 8), word, font=fnt, fill=red)
    stamp = stamp.rotate(rng.uniform(-25, 25), expand=True, resample=Image.BICUBIC)
    x = rng.randint(0, max(0, paper.size[0] - stamp.size[0]))
    y = rng.randint(paper.size[1] // 4, max(paper.size[1] // 4, paper.size[1] - stamp.size[1]))
    paper.paste(stamp, (x, y), stamp)


# --- app screens ----------------------------------------------------------------------------


def _theme(rng: random.Random) -> dict[str, tuple[int, int, int]]:
    dark = rng.random() < 0.3
    return {"bg": R.colour(rng, 10, 40) if dark else R.colour(rng, 235, 255),
            "fg": R.colour(rng, 220, 255) if dark else R.colour(rng, 10, 60),
            "muted": (150, 150, 160) if dark else (110, 110, 120), "brand": R.colour(rng, 20, 200),
            "error": (rng.randint(190, 240), rng.randint(20, 70), rng.randint(30, 80))}


def _centred(draw: ImageDraw.ImageDraw, y: float, text: str, fnt, fill, width: int) -> float:
    """Draws ``text`` wrapped and centred from ``y``; returns the y below it."""
    line = ""
    for word in [*text.split(), None]:
        trial = f"{line} {word}".strip() if word else line
        if word is None or (line and R.text_width(draw, trial, fnt) > width - 50):
            draw.text(((width - R.text_width(draw, line, fnt)) / 2, y), line, font=fnt, fill=fill)
            y += fnt.size + 6
            line = word or ""
        else:
            line = trial
    return y


def _icon(draw: ImageDraw.ImageDraw, picture_type: str, cx: float, y: float, t: dict) -> None:
    """The picture that tells the screens apart: arrow to a person, a card, or a padlock."""
    if picture_type == "screen_transfer":
        draw.ellipse((cx - 70, y, cx - 20, y + 50), fill=t["brand"])
        draw.ellipse((cx + 20, y, cx + 70, y + 50), fill=t["muted"])
        draw.line((cx - 18, y + 25, cx + 16, y + 25), fill=t["error"], width=5)
        draw.polygon([(cx + 18, y + 25), (cx + 6, y + 15), (cx + 6, y + 35)], fill=t["error"])
    elif picture_type == "screen_declined":
        draw.rounded_rectangle((cx - 45, y, cx + 45, y + 56), radius=6, fill=t["brand"])
        draw.rectangle((cx - 45, y + 12, cx + 45, y + 22), fill=(30, 30, 30))
        draw.line((cx - 30, y + 5, cx + 30, y + 52), fill=t["error"], width=6)
    else:
        draw.rounded_rectangle((cx - 28, y + 22, cx + 28, y + 62), radius=6, fill=t["error"])
        draw.arc((cx - 18, y, cx + 18, y + 40), 180, 360, fill=t["error"], width=6)


def render_screen(rng: random.Random, picture_type: str, split: str) -> Image.Image:
    """An app error screen for a transfer, a card payment or a sign-in, phone or web layout."""
    t = _theme(rng)
    phone = rng.random() < 0.6
    size = (rng.randint(340, 420), rng.randint(640, 800)) if phone else (rng.randint(760, 960), rng.randint(520, 660))
    image = Image.new("RGB", size, t["bg"])
    draw = ImageDraw.Draw(image)
    bar_h = rng.randint(48, 60)
    draw.rectangle((0, 0, size[0], bar_h), fill=t["brand"])
    draw.text((18, bar_h / 2 - 11), rng.choice(W.BANKS), font=R.font(rng, 20, bold=True), fill=(255, 255, 255))
    cx, y = size[0] / 2, bar_h + rng.randint(40, 90)
    _icon(draw, picture_type, cx, y, t)
    y += 90
    y = _centred(draw, y, pick_wording(HEADLINES[picture_type], split, rng), R.font(rng, rng.randint(22, 28), bold=True),
                 t["fg"], size[0])
    detail = rng.choice(DETAILS[picture_type]).format(
        amount=f"{rng.choice('£$€')}{rng.randint(5, 2500)}.{rng.randint(0, 99):02d}", name=rng.choice(W.PEOPLE),
        merchant=rng.choice(W.MERCHANTS).title())
    y = _centred(draw, y + 8, detail, R.font(rng, rng.randint(15, 17)), t["muted"], size[0])
    if picture_type == "screen_login":
        for label in ("Username", "Passcode"):
            draw.rounded_rectangle((40, y + 14, size[0] - 40, y + 56), radius=8, outline=t["muted"], width=2)
            draw.text((54, y + 25), label, font=R.font(rng, 15), fill=t["muted"])
            y += 56
    code = rng.choice(W.error_codes(rng))
    draw.text((cx - 40, y + 20), f"Error {code}", font=R.font(rng, 14), fill=t["muted"])
    button = rng.choice(("Try again", "Contact support", "OK"))
    by = min(size[1] - 60, y + 60)
    draw.rounded_rectangle((cx - 110, by, cx + 110, by + 44), radius=10, fill=t["brand"])
    draw.text((cx - 40, by + 12), button, font=R.font(rng, 17, bold=True), fill=(255, 255, 255))
    return image


# --- cards ----------------------------------------------------------------------------------


def _card_blank(rng: random.Random) -> Image.Image:
    w = rng.randint(260, 360)
    h = int(w / 1.586)
    face = R.gradient((w, h), R.colour(rng, 0, 200), R.colour(rng, 0, 200))
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, w - 1, h - 1), radius=int(w * 0.05), fill=255)
    face.putalpha(mask)
    return face


def render_card_new(rng: random.Random, split: str) -> Image.Image:
    """A new card stuck on the letter it came with, photographed on a table."""
    face = _card_blank(rng)
    w, h = face.size
    d = ImageDraw.Draw(face)
    d.text((w * 0.07, h * 0.08), rng.choice(W.BANKS).upper(), font=R.font(rng, int(h * 0.09), bold=True), fill=(245, 245, 245))
    d.rounded_rectangle((w * 0.08, h * 0.32, w * 0.22, h * 0.5), radius=5, fill=(212, 175, 55))
    d.text((w * 0.07, h * 0.6), f"•••• •••• •••• {rng.randint(0, 9999):04d}", font=R.font(rng, int(h * 0.09), mono=True),
           fill=(245, 245, 245))
    letter = Image.new("RGB", (int(w * 1.6), int(w * 1.9)), (252, 252, 250))
    ld = ImageDraw.Draw(letter)
    title, action = (pick_wording({k: (v[0],) for k, v in CARRIER_LINES.items()}, split, rng),
                     pick_wording({k: (v[1],) for k, v in CARRIER_LINES.items()}, split, rng))
    ld.text((30, 30), rng.choice(W.BANKS), font=R.font(rng, 22, bold=True), fill=R.colour(rng, 0, 120))
    ld.text((30, 80), title, font=R.font(rng, 24, bold=True), fill=(20, 20, 20))
    ld.text((30, 120), action, font=R.font(rng, 17), fill=(40, 40, 40))
    letter.paste(face, (int((letter.size[0] - w) / 2), int(letter.size[1] * 0.42)), face)
    canvas = R.table_background(rng, (int(letter.size[0] * rng.uniform(1.15, 1.4)), int(letter.size[1] * rng.uniform(1.1, 1.3))))
    return R.photo_finish(rng, R.place_on(rng, letter, canvas, max_angle=12))


def render_card_back(rng: random.Random, split: str) -> Image.Image:
    """The back of a card: magnetic stripe, signature panel and the lost-or-stolen helpline."""
    face = _card_blank(rng)
    w, h = face.size
    d = ImageDraw.Draw(face)
    d.rectangle((0, h * 0.1, w, h * 0.28), fill=(20, 20, 20))
    d.rectangle((w * 0.06, h * 0.36, w * 0.7, h * 0.5), fill=(240, 240, 230))
    small = R.font(rng, max(9, int(h * 0.055)))
    line = pick_wording({k: (v[0],) for k, v in HELPLINE_LINES.items()}, split, rng)
    number = f"0800 {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
    bank = rng.choice(W.BANKS)
    for i, text in enumerate((line, number, bank)):
        d.text((w * 0.06, h * (0.58 + 0.11 * i)), text, font=small, fill=(245, 245, 245))
    canvas = R.table_background(rng, (int(w * rng.uniform(1.5, 2.0)), int(h * rng.uniform(1.7, 2.4))))
    return R.photo_finish(rng, R.place_on(rng, face, canvas, max_angle=25))


# --- entry point ----------------------------------------------------------------------------


_DECIDING: dict[str, Callable[[random.Random, str], Image.Image]] = {
    "receipt_sale": lambda rng, split: render_receipt(rng, refund=False),
    "receipt_refund": lambda rng, split: render_receipt(rng, refund=True),
    "screen_transfer": lambda rng, split: render_screen(rng, "screen_transfer", split),
    "screen_declined": lambda rng, split: render_screen(rng, "screen_declined", split),
    "screen_login": lambda rng, split: render_screen(rng, "screen_login", split),
    "card_new": render_card_new,
    "card_back": render_card_back,
}


def render_picture(picture_type: str, seed: int, split: str) -> Image.Image:
    """One RGB picture of ``picture_type``; the same (type, seed, split) gives the same picture."""
    rng = random.Random(f"multimodal:{picture_type}:{split}:{seed}")
    if picture_type in _DECIDING:
        return _DECIDING[picture_type](rng, split).convert("RGB")
    if picture_type in IRRELEVANT_TYPES:
        return render_kind(IRRELEVANT_TYPES[picture_type], 1_000_000 + SPLITS.index(split) * 100_000 + seed).image
    raise ValueError(f"picture type: expected one of {sorted(IMAGE_KIND_OF)}, got {picture_type!r}")
