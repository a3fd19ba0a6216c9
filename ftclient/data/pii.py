"""Finding (and optionally redacting) personal data and secrets in text.

Each kind is a cheap regular expression for candidates followed by a check that keeps
false positives low: payment cards pass Luhn and have a card-network prefix, IBANs pass
the ISO 13616 mod-97 check and the country's length (``python-stdnum``), US SSNs pass
the SSA's allocation rules, phone numbers must be valid numbers for their region
(``phonenumbers``, Google's libphonenumber), IPs must parse (:mod:`ipaddress`).
Amounts, dates, "last 4 digits" and order numbers are not matched.

Kinds and their placeholders are listed in :data:`PLACEHOLDERS`. The libraries are
imported on first use, not when this module is imported.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

PLACEHOLDERS = {
    "api_key": "[API_KEY]",
    "email": "[EMAIL]",
    "iban": "[IBAN]",
    "card": "[CARD]",
    "us_ssn": "[SSN]",
    "uk_nino": "[NINO]",
    "ipv4": "[IP]",
    "ipv6": "[IP]",
    "phone": "[PHONE]",
}
KINDS = tuple(PLACEHOLDERS)  # also the order of precedence when matches overlap

# Regions whose national formats count as phone numbers (numbers with +CC always do).
PHONE_REGIONS = ("US", "GB")


@dataclass(frozen=True)
class Hit:
    kind: str
    start: int
    end: int


_KEY_PATTERNS = re.compile(
    r"""(?<![\w-])(?:
        sk-(?:proj-|ant-|svcacct-)?[A-Za-z0-9_-]{20,}      # OpenAI / Anthropic
      | tgp_v1_[A-Za-z0-9_-]{20,}                            # Together
      | (?:AKIA|ASIA)[0-9A-Z]{16}                            # AWS access key id
      | gh[pousr]_[A-Za-z0-9]{36,}                           # GitHub tokens
      | github_pat_[A-Za-z0-9_]{40,}
      | xox[abposr]-[A-Za-z0-9-]{10,}                        # Slack
      | AIza[0-9A-Za-z_-]{35}                                # Google API key
      | hf_[A-Za-z0-9]{30,}                                  # Hugging Face
      | (?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}          # Stripe
    )(?![\w-])""",
    re.VERBOSE,
)
_TOKEN = re.compile(r"(?<![\w+/=-])[A-Za-z0-9+/_=-]{32,}(?![\w+/=-])")
_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}(?![\w-])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,4})?(?![A-Za-z0-9])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_SSN = re.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])")
_NINO = re.compile(
    r"(?<![A-Za-z0-9])(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
    r"(?: ?\d{2}){3} ?[A-D](?![A-Za-z0-9])"
)
_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?(?![\w:])")
_DIGIT = re.compile(r"\d")
_PHONE_HINT = re.compile(r"\d(?:[\s().-]{0,3}\d){6,}")


def luhn_ok(digits: str) -> bool:
    from stdnum import luhn

    return luhn.is_valid(digits)


def _entropy(s: str) -> float:
    n = len(s)
    return -sum(c / n * math.log2(c / n) for c in Counter(s).values())


def _api_keys(text: str) -> Iterable[tuple[int, int]]:
    for m in _KEY_PATTERNS.finditer(text):
        yield m.span()
    for m in _TOKEN.finditer(text):
        s = m.group()
        # A long random token: upper, lower and digits mixed, high entropy; not a word,
        # a path or a hex digest (hex tops out at 4 bits per character).
        if (
            any(c.isupper() for c in s)
            and any(c.islower() for c in s)
            and sum(c.isdigit() for c in s) >= 3
            and _entropy(s) >= 4.3
        ):
            yield m.span()


def _emails(text: str) -> Iterable[tuple[int, int]]:
    if "@" in text:
        for m in _EMAIL.finditer(text):
            yield m.span()


def _ibans(text: str) -> Iterable[tuple[int, int]]:
    from stdnum import iban

    for m in _IBAN.finditer(text):
        s = m.group()
        # The last group may be a following word: try the whole match, then without it.
        for cand in (s, s.rsplit(" ", 1)[0] if " " in s else None):
            if cand and iban.is_valid(cand.upper()):
                yield m.start(), m.start() + len(cand)
                break


def _cards(text: str) -> Iterable[tuple[int, int]]:
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group())
        if 13 <= len(digits) <= 19 and digits[0] in "23456" and len(set(digits)) > 1 and luhn_ok(digits):
            yield m.span()


def _ssns(text: str) -> Iterable[tuple[int, int]]:
    from stdnum.us import ssn

    for m in _SSN.finditer(text):
        if ssn.is_valid(m.group().replace(" ", "-")):
            yield m.span()


def _ninos(text: str) -> Iterable[tuple[int, int]]:
    for m in _NINO.finditer(text):
        yield m.span()


def _ipv4s(text: str) -> Iterable[tuple[int, int]]:
    import ipaddress

    for m in _IPV4.finditer(text):
        try:
            ip = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if not ip.is_unspecified:
            yield m.span()


def _ipv6s(text: str) -> Iterable[tuple[int, int]]:
    if text.count(":") < 2:
        return
    import ipaddress

    for m in _IPV6.finditer(text):
        s = m.group()
        groups = [g for g in s.split(":") if g]
        if len(groups) < 3 and not ("::" in s and len(s) >= 6 and any(c.isalpha() for c in s)):
            continue  # "12:30:45" is a time, not an address
        try:
            ipaddress.IPv6Address(s)
        except ValueError:
            continue
        yield m.span()


def _phones(text: str, regions: tuple[str, ...] = PHONE_REGIONS) -> Iterable[tuple[int, int]]:
    if not _PHONE_HINT.search(text):
        return
    from phonenumbers import Leniency, PhoneNumberMatcher

    seen: set[tuple[int, int]] = set()
    for region in regions:
        for m in PhoneNumberMatcher(text, region, leniency=Leniency.VALID):
            span = (m.start, m.end)
            if span not in seen:
                seen.add(span)
                yield span


_FINDERS = {
    "api_key": _api_keys,
    "email": _emails,
    "iban": _ibans,
    "card": _cards,
    "us_ssn": _ssns,
    "uk_nino": _ninos,
    "ipv4": _ipv4s,
    "ipv6": _ipv6s,
    "phone": _phones,
}
_DIGIT_KINDS = {"iban", "card", "us_ssn", "uk_nino", "ipv4", "ipv6", "phone"}


def scan(text: str, kinds: Iterable[str] = KINDS) -> list[Hit]:
    """All PII hits in ``text``, sorted by position; overlaps go to the kind listed first."""
    hits: list[Hit] = []
    has_digit = _DIGIT.search(text) is not None
    for kind in kinds:
        if kind in _DIGIT_KINDS and not has_digit:
            continue
        for start, end in _FINDERS[kind](text):
            if any(start < h.end and h.start < end for h in hits):
                continue
            hits.append(Hit(kind, start, end))
    hits.sort(key=lambda h: h.start)
    return hits


def redact(text: str, hits: list[Hit] | None = None) -> str:
    """``text`` with each hit replaced by its placeholder, e.g. ``[EMAIL]``."""
    if hits is None:
        hits = scan(text)
    out, pos = [], 0
    for h in sorted(hits, key=lambda h: h.start):
        out.append(text[pos : h.start])
        out.append(PLACEHOLDERS[h.kind])
        pos = h.end
    out.append(text[pos:])
    return "".join(out)
