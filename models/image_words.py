"""Invented names and phrases for the rendered training pictures (no real people or card numbers)."""

from __future__ import annotations

import random

BANKS = [
    "Northwind Bank",
    "Contoso Bank",
    "Fabrikam Pay",
    "Bluebird Money",
    "Acme Savings",
    "Harbour Credit",
    "Lumen Bank",
    "Kestrel Finance",
    "Meridian Pay",
    "Oakleaf Bank",
    "Tandem Money",
    "Union Square Bank",
]
MERCHANTS = [
    "SUNRISE MINI MARKET",
    "GREEN LEAF CAFE",
    "CITY HARDWARE SDN BHD",
    "BOOKS & MORE LTD",
    "FRESHMART",
    "THE CORNER BAKERY",
    "PETRO EXPRESS",
    "URBAN STATIONERY",
    "GOLDEN WOK RESTAURANT",
    "QUICKSTOP STORE",
    "HOME DECO TRADING",
    "BRIGHT PHARMACY",
    "MAPLE COFFEE CO",
    "NOODLE HOUSE",
    "TECHZONE ELECTRONICS",
]
STREETS = [
    "12 High Street, Leeds LS1 4AB",
    "NO. 8, JALAN MERANTI 3, 81100 JOHOR",
    "221 Market Road, Bristol",
    "45 Station Lane, Manchester M1 2CD",
    "LOT 17, TAMAN SERI, 43300 SELANGOR",
    "9 Harbour View, Cardiff",
]
ITEMS = [
    "MILK 1L",
    "BREAD WHOLEMEAL",
    "COFFEE LATTE",
    "A4 PAPER 500S",
    "BATTERY AA 4PK",
    "RICE 5KG",
    "CHICKEN WRAP",
    "GREEN TEA",
    "SCREWDRIVER SET",
    "NOTEBOOK A5",
    "ORANGE JUICE",
    "PHONE CABLE",
    "TOOTHPASTE",
    "PAINT BRUSH",
    "CAKE SLICE",
    "MINERAL WATER",
    "GLUE STICK",
    "TAPE 48MM",
]
FOOTERS = [
    "THANK YOU! PLEASE COME AGAIN",
    "GOODS SOLD ARE NOT RETURNABLE",
    "Thank you for shopping",
    "Keep this receipt for returns",
]
PEOPLE = ["J Smith", "A Patel", "M Garcia", "L Chen", "R Okafor", "S Novak", "K Tanaka", "E Murphy"]
ERROR_HEADLINES = [
    "Transfer failed",
    "Payment declined",
    "Something went wrong",
    "Unable to complete transfer",
    "Card payment failed",
    "Transaction declined",
    "Top-up failed",
    "Login failed",
    "Connection error",
    "Payment could not be processed",
    "Transfer unsuccessful",
    "Insufficient funds",
]
ERROR_DETAILS = [
    "Your transfer of {amount} to {name} could not be completed.",
    "We couldn't process your payment of {amount}. Please try again later.",
    "The payment of {amount} was declined by your bank.",
    "Please check your connection and try again.",
    "Your card was declined. Contact support if this keeps happening.",
    "You do not have enough money to send {amount}.",
    "This service is temporarily unavailable.",
]
SENTENCES = [
    "Thank you for contacting us about your account.",
    "We have reviewed the transaction you reported.",
    "Your new card will arrive within five working days.",
    "Please keep this letter for your records.",
    "If you have any questions, please call our customer service team.",
    "The interest rate on your savings account will change next month.",
    "We are writing to confirm the changes to your direct debit.",
    "Your statement for the period is enclosed with this letter.",
    "No further action is needed on your part.",
    "We apologise for any inconvenience this may have caused.",
    "The refund has been credited to your account.",
    "Please sign and return the enclosed form.",
]


def error_codes(rng: random.Random) -> list[str]:
    """Error codes in a few house styles: E102, ERR-503, TX4821, 0x00 style left out."""
    return [
        f"E{rng.randint(100, 999)}",
        f"ERR-{rng.randint(100, 999)}",
        f"TX{rng.randint(1000, 9999)}",
        f"PAY-{rng.randint(10, 99)}",
        f"{rng.choice('ABCDEFGHK')}{rng.randint(10, 99)}{rng.randint(0, 9)}",
    ]
