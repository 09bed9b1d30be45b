"""Key fields from OCR lines: receipts, error screens, cards. Lines are built by hand here, with
boxes, the way PP-OCR returns them (a label and its value are often separate lines on one row)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agent.messages import OcrLine
from models.image_fields import (
    group_rows,
    mask_card_numbers,
    parse_amounts,
    parse_dates,
    read_fields,
)


def line(text: str, x: float, y: float, *, w: float = 120, h: float = 20, conf: float = 0.95) -> OcrLine:
    return OcrLine(text=text, confidence=conf, box=((x, y), (x + w, y), (x + w, y + h), (x, y + h)))


def page(*rows: tuple[str, ...] | str) -> tuple[OcrLine, ...]:
    """One row per argument, 30 px apart; a tuple puts several lines side by side on a row."""
    out = []
    for i, row in enumerate(rows):
        parts = (row,) if isinstance(row, str) else row
        for j, text in enumerate(parts):
            out.append(line(text, 10 + 200 * j, 10 + 30 * i + (2 if j else 0)))
    return tuple(out)


def test_rows_join_lines_on_one_baseline_left_to_right() -> None:
    rows = group_rows([line("9.00", 300, 101), line("Total:", 10, 100), line("Cash", 10, 140)])
    assert [r.text for r in rows] == ["Total: 9.00", "Cash"]


@pytest.mark.parametrize(
    ("text", "amounts"),
    [
        ("RM33.90", (Decimal("33.90"),)),
        ("Total Amount:S8.20", (Decimal("8.20"),)),
        ("1X19.0019.00", ()),  # glued digits are not an amount
        ("-RM0.02", ()),
        ("£1,234.50 and 12,50", (Decimal("1234.50"), Decimal("12.50"))),
        ("9.000", ()),
    ],
)
def test_parse_amounts(text: str, amounts: tuple[Decimal, ...]) -> None:
    assert parse_amounts(text) == amounts


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("25/12/20188:13:39PM", "2018-12-25"),
        ("12-01-19 21:13SH01ZK09", "2019-01-12"),
        ("12/28/2017", "2017-12-28"),  # month first when day first is impossible
        ("05Mar201818:24", "2018-03-05"),
        ("17JAN2018", "2018-01-17"),
        ("ORD#50-REG#19-18/01/2018 10:27:03", "2018-01-18"),
        ("Date: 2026-11-27", "2026-11-27"),
        ("Nov 27, 2026", "2026-11-27"),
        ("Tel No.03-4162-2318", None),
        ("31/02/2019", None),
    ],
)
def test_parse_dates(text: str, iso: str | None) -> None:
    found = parse_dates(text)
    assert (found[0] if found else None) == iso


def test_receipt_prefers_the_rounded_total_and_checks_cash_minus_change() -> None:
    lines = page(
        "MR D.I.Y. (JOHOR) SDN BHD",
        "LOT 1851-A, JALAN KPB 6",
        "-INVOICE-",
        ("1X19.00", "19.00"),
        ("Item(s):4", "Qty(s):4"),
        ("TOTAL", "RM33.92"),
        ("ROUNDING ADJUSTMENT", "-RM0.02"),
        ("TOTAL ROUNDED", "RM33.90"),
        ("CASH", "RM50.00"),
        ("CHANGE", "RM16.10"),
        "12-01-19 21:13 SH01",
    )
    fields = dict(read_fields(lines, kind="receipt"))
    assert fields["total"] == "33.90"
    assert fields["date"] == "2019-01-12"
    assert fields["merchant"] == "MR D.I.Y. (JOHOR) SDN BHD"


def test_receipt_total_ignores_tax_summaries_and_reads_the_value_on_the_next_row() -> None:
    lines = page(
        "TEO HENG STATIONERY & BOOKS",
        "Date:17/01/2018",
        ("SUB-TOTAL(EX)", "26.00"),
        ("TOTAL TAX", "1.56"),
        "TOTAL",
        "27.55",
        ("CASH", "27.55"),
        ("CHANGE", "0.00"),
        "GST SUMMARY",
        ("TOTAL:", "26.00", "1.56"),
    )
    assert dict(read_fields(lines, kind="receipt"))["total"] == "27.55"


def test_receipt_with_a_date_label_on_its_own_row() -> None:
    lines = page("Document No: TD01167104", "Date:", "25/12/2018 8:13:39PM", ("Total:", "9.00"))
    fields = dict(read_fields(lines, kind="receipt"))
    assert fields["date"] == "2018-12-25" and fields["total"] == "9.00"


def test_error_screen_fields() -> None:
    lines = (
        line("Northwind Bank", 20, 40, h=22),
        line("Transfer failed", 80, 200, h=34),
        line("Your transfer of £250.00 to J Smith could", 30, 250, w=330, h=18),
        line("not be completed.", 120, 272, h=18),
        line("Error code: E102", 120, 320, h=16),
        line("Try again", 140, 400, h=20),
    )
    fields = dict(read_fields(lines, kind="screenshot"))
    assert fields["error_message"] == "Transfer failed"
    assert fields["error_code"] == "E102"
    assert fields["amount"] == "250.00"
    assert "could" in fields["error_detail"]


@pytest.mark.parametrize("code_text", ["(ERR-503)", "Ref: TX4821", "Error PAY-42"])
def test_error_codes_in_house_styles(code_text: str) -> None:
    lines = (line("Payment declined", 50, 100, h=30), line(code_text, 50, 150, h=14))
    fields = dict(read_fields(lines, kind="screenshot"))
    assert fields["error_code"] == code_text.split()[-1].strip("()").upper()
    assert fields["error_message"] == "Payment declined"


def test_no_error_fields_on_an_ordinary_screen() -> None:
    lines = page("Current account", "£6,644.35", ("Noodle House", "-£155.31"))
    names = dict(read_fields(lines, kind="screenshot"))
    assert "error_message" not in names and "error_code" not in names


def test_card_fields_and_full_numbers_are_masked() -> None:
    lines = page("CONTOSO BANK", "4821 7312 0045 9921", "VALID THRU", "05/27", "J SMITH")
    fields = dict(read_fields(lines, kind="card"))
    assert fields["card_last4"] == "9921" and fields["expiry"] == "05/27"
    assert mask_card_numbers("card 4821 7312 0045 9921 ok") == "card •••• 9921 ok"
    assert mask_card_numbers("EAN 9556939040118") == "EAN •••• 0118"
    assert mask_card_numbers("ref 12345678") == "ref 12345678"


def test_masked_card_number_gives_last_four() -> None:
    lines = page("•••• •••• •••• 4821", "03/26")
    assert dict(read_fields(lines, kind="card")) == {"card_last4": "4821", "expiry": "03/26"}


def test_a_date_is_not_an_expiry_unless_the_picture_is_a_card() -> None:
    lines = page("Date: 25/12/2018", ("Total", "9.00"))
    assert "expiry" not in dict(read_fields(lines, kind="receipt"))


def test_nothing_from_nothing() -> None:
    assert read_fields((), kind="receipt") == ()
    assert read_fields(page("a photo"), kind="other") == ()


@pytest.mark.parametrize(
    "label",
    [
        "TOTAL TAX",
        "TOTALTAX",
        "Total GST (RM) :",
        "Sub Total",
        "Total Qty: 9",
        "ROUNDING ADJ",
        "TOTAL INCLUDES 6% GST",
    ],
)
def test_rows_that_are_not_the_total_are_ignored(label: str) -> None:
    lines = page((label, "99.00"), ("TOTAL", "9.00"))
    assert dict(read_fields(lines, kind="receipt"))["total"] == "9.00"


def test_a_wrapped_headline_is_read_whole_and_kept_apart_from_the_detail() -> None:
    lines = (
        line("Unable to complete", 60, 200, h=32),
        line("transfer", 120, 240, h=28),
        line("Your card was declined. Contact", 40, 290, w=300, h=26),
        line("support if this keeps happening.", 40, 320, w=300, h=26),
        line("Ref: E744", 120, 370, h=18),
    )
    fields = dict(read_fields(lines, kind="screenshot"))
    assert fields["error_message"] == "Unable to complete transfer"
    assert fields["error_detail"] == "Your card was declined. Contact support if this keeps happening"
    assert fields["error_code"] == "E744"


def test_rows_are_found_on_a_photo_taken_at_an_angle() -> None:
    import math

    def tilted(text: str, x: float, y: float, angle_deg: float = 12.0) -> OcrLine:
        a = math.radians(angle_deg)
        corners = [(0, 0), (110, 0), (110, 18), (0, 18)]
        return OcrLine(
            text=text,
            confidence=0.9,
            box=tuple(
                (x + cx * math.cos(a) - cy * math.sin(a), y + cx * math.sin(a) + cy * math.cos(a))
                for cx, cy in corners
            ),
        )

    a = math.radians(12.0)
    rows = [("SUBTOTAL", "34.37"), ("TAX", "6.87"), ("TOTAL", "41.24"), ("CASH", "50.00"), ("CHANGE", "8.76")]
    lines = []
    for i, (label, value) in enumerate(rows):  # label at x=0, value 260 px along the tilted row
        x0, y0 = 50 - 30 * i * math.sin(a), 100 + 30 * i * math.cos(a)
        lines += [tilted(label, x0, y0), tilted(value, x0 + 260 * math.cos(a), y0 + 260 * math.sin(a))]
    assert [r.text for r in group_rows(lines)] == [f"{k} {v}" for k, v in rows]
    assert dict(read_fields(lines, kind="receipt"))["total"] == "41.24"


def test_on_a_card_a_lone_group_of_four_digits_is_the_last_four() -> None:
    lines = page("HARBOUR CREDIT", "LCHEN 04/33 VALIDTHRU 4151")
    assert dict(read_fields(lines, kind="card")) == {"card_last4": "4151", "expiry": "04/33"}
    assert "card_last4" not in dict(read_fields(page("Order 4151"), kind="receipt"))
