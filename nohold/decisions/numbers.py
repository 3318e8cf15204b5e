"""Which numbers nohold may dial: the admin's allow-list, checked with `phonenumbers`.

Toll fraud is what getting this wrong costs, so the rule is deny by default: a
number is dialable only when it parses, is a valid number of its region, and
matches an entry the admin listed, by region and line type ("PL:mobile") or by
an E.164 prefix ("+4822*"). Premium-rate, shared-cost and foreign numbers pass
only when an entry names them. The same check runs before a number is stored
and again before it is dialled (the list may have changed in between).

Raw input comes from two places: a caller id (`+48601234567`, `601234567`,
`anonymous`) and digits keyed by the caller (`0048601234567`, `601234567`). Both
are checked for alphabet and length before phonenumbers sees them, so nothing
but digits (and one leading `+`) ever reaches a dial string. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

# Line types an entry may name, as phonenumbers classifies numbers.
KINDS: dict[str, int] = {
    "fixed_line": PhoneNumberType.FIXED_LINE,
    "mobile": PhoneNumberType.MOBILE,
    "toll_free": PhoneNumberType.TOLL_FREE,
    "premium_rate": PhoneNumberType.PREMIUM_RATE,
    "shared_cost": PhoneNumberType.SHARED_COST,
    "voip": PhoneNumberType.VOIP,
    "personal_number": PhoneNumberType.PERSONAL_NUMBER,
    "pager": PhoneNumberType.PAGER,
    "uan": PhoneNumberType.UAN,
    "voicemail": PhoneNumberType.VOICEMAIL,
}
_KIND_NAMES = {value: name for name, value in KINDS.items()}

# Where a region cannot tell fixed from mobile by the number (e.g. US, CA),
# phonenumbers says FIXED_LINE_OR_MOBILE: either entry admits it, as the number
# is one or the other and both are ordinary tariffs.
_EITHER = {"fixed_line", "mobile"}

# E.164 allows 15 digits at most; a national number keyed with 00 and a country
# code may be 2 longer.
MAX_DIGITS = 17
_KEYED = re.compile(r"[0-9]+")
_CALLER_ID = re.compile(r"\+?[0-9]+")
_RULE_KIND = re.compile(r"(?P<region>[A-Z]{2}):(?P<kind>[a-z_]+)")
_RULE_PREFIX = re.compile(r"\+(?P<digits>[0-9]{1,14})\*")

DIAL_FORMATS = ("e164", "e164_digits", "national")


class NumberRefused(ValueError):
    """Not a number nohold will store or dial; `reason` is a short word for logs and
    prompts: not_digits, too_long, not_a_number, invalid, not_allowed, withheld."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


@dataclass(frozen=True)
class AllowRule:
    """One entry of `allowed_numbers`: a region and line type, or an E.164 prefix."""

    region: str = ""
    kind: str = ""
    prefix: str = ""  # "+4822": any valid number starting with it

    def admits(self, number: Dialable) -> bool:
        if self.prefix:
            return number.e164.startswith(self.prefix)
        if number.region != self.region:
            return False
        return self.kind == number.kind or (
            number.kind == "fixed_line_or_mobile" and self.kind in _EITHER)

    def __str__(self) -> str:
        return f"{self.prefix}*" if self.prefix else f"{self.region}:{self.kind}"


def parse_rule(text: str) -> AllowRule:
    """`PL:mobile`, `DE:fixed_line` or `+4822*`; ValueError saying what is allowed."""
    found = _RULE_KIND.fullmatch(text)
    if found:
        region, kind = found["region"], found["kind"]
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{text!r}: {region} is not a region phonenumbers knows")
        if kind not in KINDS:
            raise ValueError(f"{text!r}: line type {kind!r} is not one of {', '.join(KINDS)}")
        return AllowRule(region=region, kind=kind)
    found = _RULE_PREFIX.fullmatch(text)
    if found:
        return AllowRule(prefix="+" + found["digits"])
    raise ValueError(f"{text!r}: write REGION:type (e.g. 'PL:mobile') or an E.164 "
                     "prefix with a star (e.g. '+4822*')")


@dataclass(frozen=True)
class Dialable:
    """A number that passed the policy: E.164, its region and line type."""

    e164: str
    region: str
    kind: str
    national: str  # digits only, as dialled inside its own country

    def digits(self, fmt: str) -> str:
        """The number as the outbound route wants it (callbacks.dial_format)."""
        if fmt == "e164":
            return self.e164
        if fmt == "e164_digits":
            return self.e164[1:]
        if fmt == "national":
            return self.national
        raise ValueError(f"unknown dial format {fmt!r}")

    def spoken(self) -> str:
        """Digits to read back to the caller: national form at home, else E.164 digits."""
        return self.national


@dataclass(frozen=True)
class NumberPolicy:
    default_region: str
    rules: tuple[AllowRule, ...]

    def parse(self, raw: str) -> Dialable:
        """Any valid number, allowed or not (NumberRefused if it is not one)."""
        if not raw or raw.lower() in ("anonymous", "unknown", "restricted", "private"):
            raise NumberRefused("withheld", "no number given")
        if not _CALLER_ID.fullmatch(raw):
            raise NumberRefused("not_digits", "only digits and a leading + are accepted")
        if len(raw.lstrip("+")) > MAX_DIGITS:
            raise NumberRefused("too_long", f"more than {MAX_DIGITS} digits")
        try:
            parsed = phonenumbers.parse(raw, self.default_region)
        except phonenumbers.NumberParseException as exc:
            raise NumberRefused("not_a_number", str(exc)) from None
        if not phonenumbers.is_valid_number(parsed):
            raise NumberRefused("invalid", "not a valid number of any region")
        region = phonenumbers.region_code_for_number(parsed) or ""
        kind = phonenumbers.number_type(parsed)
        national = re.sub(r"[^0-9]", "", phonenumbers.format_number(
            parsed, PhoneNumberFormat.NATIONAL))
        return Dialable(
            e164=phonenumbers.format_number(parsed, PhoneNumberFormat.E164),
            region=region,
            kind=_KIND_NAMES.get(kind, "fixed_line_or_mobile"
                                 if kind == PhoneNumberType.FIXED_LINE_OR_MOBILE else "unknown"),
            national=national,
        )

    def check(self, raw: str) -> Dialable:
        """The number if nohold may dial it; NumberRefused (with a reason) if not."""
        number = self.parse(raw)
        if not any(rule.admits(number) for rule in self.rules):
            raise NumberRefused(
                "not_allowed", f"{number.e164} ({number.region} {number.kind}) matches no "
                "entry of callbacks.allowed_numbers")
        return number

    def check_keyed(self, digits: str, low: int, high: int) -> Dialable:
        """Digits the caller keyed: digits only, between low and high of them."""
        if not _KEYED.fullmatch(digits or ""):
            raise NumberRefused("not_digits", "keyed input must be digits")
        if not low <= len(digits) <= high:
            raise NumberRefused("too_long" if len(digits) > high else "not_a_number",
                                f"{len(digits)} digits, expected {low} to {high}")
        return self.check(digits)
