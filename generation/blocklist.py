"""Prompt blocklist matching: a pure rule, kept apart from Discord so it is tested on its own.

Terms match case-insensitively, after Unicode NFKC normalisation and case folding (so full-width
letters, ligatures and ``ß``/``ss`` cannot slip past), on word boundaries (a blocked ``ass`` does not
refuse "class"). A term of several words matches across any run of spaces or punctuation between them.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache


def normalise(text: str) -> str:
    """NFKC, case-folded, with combining marks stripped ("café" and "cafe" match each other)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFKD", folded)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=1024)
def _pattern(term: str) -> re.Pattern[str] | None:
    words = re.findall(r"\w+", normalise(term))
    if not words:
        return None
    joined = r"[\W_]+".join(re.escape(word) for word in words)
    return re.compile(rf"(?<!\w){joined}(?!\w)")


def find_blocked_term(prompt: str, terms: Iterable[str]) -> str | None:
    """The first blocklisted term the prompt contains, as the admin wrote it, or ``None``."""
    text = normalise(prompt)
    for term in terms:
        pattern = _pattern(term)
        if pattern is not None and pattern.search(text):
            return term
    return None
