"""Sentences for the multimodal set: the default domain's examples and Banking77, split so that
evaluation never sees a sentence that the text model or the fusion trained on.

Domain sentences are split with the same stratified split (fractions and seed of
``models.default_model.DEFAULT_CONFIG``) that trained the default text model: the sentences it
held out for testing are the only domain sentences used for evaluation here. Banking77's
categories that mean the same as a domain intent are mapped to it (``BANKING77_TO_DOMAIN``);
its ``train.csv`` feeds training and ``test.csv`` evaluation. Banking77 is read by path and
skipped with a log line when absent.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

from models import datasets as ds

log = logging.getLogger(__name__)

DEFAULT_BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "data" / "banking77"
MAX_CHARS = 110  # longer sentences make long clips; they are left out
B77_PER_CATEGORY = {"train": 14, "test": 10}

BANKING77_TO_DOMAIN = {
    "activate_my_card": "activate_card",
    "card_arrival": "card_not_arrived",
    "card_delivery_estimate": "card_not_arrived",
    "lost_or_stolen_card": "lost_or_stolen_card",
    "declined_card_payment": "declined_payment",
    "failed_transfer": "failed_transfer",
    "declined_transfer": "failed_transfer",
    "request_refund": "refund_request",
    "Refund_not_showing_up": "refund_request",
    "card_payment_not_recognised": "dispute_charge",
    "exchange_rate": "exchange_rate",
    "pin_blocked": "pin_blocked",
    "terminate_account": "close_account",
    "card_swallowed": "cash_withdrawal_problem",
    "wrong_amount_of_cash_received": "cash_withdrawal_problem",
    "passcode_forgotten": "app_login_problem",
    "direct_debit_payment_not_recognised": "direct_debit",
}
# Replies that make no sense next to a picture; kept for speech, left out of picture turns.
CONVERSATIONAL = frozenset({"greeting", "goodbye", "thanks", "affirm", "deny", "ask_how_long", "ask_cost", "ask_why"})

Row = tuple[str, str, str]  # (sentence, intent, source)


def domain_split(domain_path: Path) -> tuple[list[Row], list[Row]]:
    """(sentences the default text model trained or validated on, sentences it held out)."""
    from models.default_model import DEFAULT_CONFIG, default_sentiment_path
    from models.domain_data import read_domain

    domain_path = Path(domain_path)
    sentiment = default_sentiment_path(domain_path)
    affect = ds.read_affect_csv(sentiment) if sentiment else []
    c = DEFAULT_CONFIG
    split = ds.stratified_split([*read_domain(domain_path).examples(), *affect], task="intent",
                                val_fraction=c.val_fraction, test_fraction=c.test_fraction, seed=c.seed)

    def rows(part: tuple[ds.Example, ...]) -> list[Row]:
        return [(ex.text, ex.intent, "domain") for ex in part
                if ex.intent is not None and ex.intent != ds.OOS_LABEL and len(ex.text) <= MAX_CHARS]

    return rows(split.train) + rows(split.val), rows(split.test)


def banking77_rows(folder: Path | None, part: str, rng: random.Random) -> list[Row]:
    """Mapped Banking77 rows of ``part`` (train|test), at most ``B77_PER_CATEGORY[part]`` per category."""
    if folder is None or not (Path(folder) / f"{part}.csv").is_file():
        log.info("Banking77 %s.csv not found under %s; the set uses the domain's sentences only", part, folder)
        return []
    by_category: dict[str, list[Row]] = {}
    for ex in ds.read_intent_csv(Path(folder) / f"{part}.csv"):
        intent = BANKING77_TO_DOMAIN.get(str(ex.intent))
        if intent is not None and len(ex.text) <= MAX_CHARS:
            by_category.setdefault(str(ex.intent), []).append((ex.text.strip(), intent, "banking77"))
    out: list[Row] = []
    for category in sorted(by_category):
        rows = by_category[category]
        out += rng.sample(rows, min(B77_PER_CATEGORY[part], len(rows)))
    return out


def unused_banking77_rows(folder: Path | None, used: set[str]) -> list[Row]:
    """Mapped Banking77 training rows whose text is in none of the pools (file order): more
    training sentences that cannot leak into validation or test."""
    if folder is None or not (Path(folder) / "train.csv").is_file():
        return []
    seen, out = set(used), []
    for ex in ds.read_intent_csv(Path(folder) / "train.csv"):
        intent, text = BANKING77_TO_DOMAIN.get(str(ex.intent)), ex.text.strip()
        if intent is not None and len(text) <= MAX_CHARS and text not in seen:
            seen.add(text)
            out.append((text, intent, "banking77"))
    return out


def _halves(rows: list[Row], rng: random.Random) -> tuple[list[Row], list[Row]]:
    rows = rows[:]
    rng.shuffle(rows)
    return rows[: len(rows) // 2], rows[len(rows) // 2:]


def sentence_pools(domain_path: Path, banking77_dir: Path | None,
                   rng: random.Random) -> tuple[dict[str, list[Row]], dict[str, Any]]:
    """Disjoint sentence pools ``spoken_{train,val,test}`` and ``irrelevant_{train,val,test}``."""
    seen, held_out = domain_split(domain_path)
    b77_train, b77_test = banking77_rows(banking77_dir, "train", rng), banking77_rows(banking77_dir, "test", rng)
    spoken_fit, irrelevant_fit = _halves(seen + b77_train, rng)
    spoken_test, irrelevant_test = _halves(held_out + b77_test, rng)
    n_val = len(spoken_fit) // 6
    m_val = len(irrelevant_fit) // 6
    irrelevant_fit = [r for r in irrelevant_fit if r[1] not in CONVERSATIONAL]
    irrelevant_test = [r for r in irrelevant_test if r[1] not in CONVERSATIONAL]
    pools = {"spoken_train": spoken_fit[n_val:], "spoken_val": spoken_fit[:n_val], "spoken_test": spoken_test,
             "irrelevant_train": irrelevant_fit[m_val:], "irrelevant_val": irrelevant_fit[:m_val],
             "irrelevant_test": irrelevant_test}
    info = {"domain_seen_by_text_model": len(seen), "domain_held_out_by_text_model": len(held_out),
            "banking77_train_rows": len(b77_train), "banking77_test_rows": len(b77_test),
            "banking77_dir": str(banking77_dir) if banking77_dir else None,
            "pool_sizes": {k: len(v) for k, v in pools.items()}}
    return pools, info
