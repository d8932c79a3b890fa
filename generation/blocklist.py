"""The prompt blocklist: a rule a member cannot walk around by dressing a word up.

A blocked term and a prompt both go through :func:`normalise`, which undoes the disguises a member
tries first, and the term then becomes a pattern that knows which characters may stand for which letter.

The normalisation, in order:

1. **Compatibility forms and case** (Unicode NFKC, then case folding): full-width and "mathematical"
   letters, ligatures and ``ß``/``ss`` read as the plain letters.
2. **Invisible characters**: default-ignorable and format characters (category Cf: zero-width space,
   joiner and non-joiner, soft hyphen, word joiner, bidi controls; also variation selectors, tag
   characters, Hangul fillers) and control characters are removed, so ``f<zero-width space>ox`` is
   ``fox``; every run of whitespace becomes one space.
3. **Marks**: after canonical decomposition every combining mark is removed, so ``café`` is ``cafe``
   and a struck-through ``f̶o̶x`` is ``fox``.
4. **Look-alike letters**: a character that Unicode's confusables data (UTS #39, through the
   ``confusable-homoglyphs`` package, not a table of our own) gives as a look-alike of Latin letters is
   replaced by them: Cyrillic ``о`` and ``х``, Greek ``ο``, capital ``К``, ``ɑ``, ``ı``... A look-alike
   of capital I / small l becomes ``1``, which the matcher reads as either letter, as it does the
   digit. A character that looks like one letter as a capital and another in small letters (Greek
   ``Ν``/``ν``: N and v) stays, and the matcher lets it stand for both. Other non-ASCII decimal digits
   become ASCII digits. Case is folded before this step (matching must not depend on it), so a letter
   that only looks Latin as a capital (Cyrillic ``В``) reads as Latin in small letters too: a Russian
   word whose every letter has a Latin look-alike reads as that Latin word, the price of catching
   whole-word look-alikes such as ``ВОХ``.
5. **Split words**: punctuation and symbols between two letters (``f.o.x``, ``f-o-x``, ``f_o_x``,
   ``f*o*x``, ``f♥o♥x``) and spaces between single letters (``f o x``, ``f . o . x``) become a *joint*,
   written :data:`JOINT`. The matcher reads a joint both as nothing (``f.o.x`` is ``fox``) and as a
   word boundary (``well-known`` still contains ``well``), so joining never hides a word that was there.

Digits and symbols used for letters are left to the matcher, because no single rewriting of the prompt
gets them right: ``1`` is i or l, ``@everyone`` is a mention where ``@ss`` is a disguise, and the ``5``
of "3 cats at 5 pm" is a number. Each letter of a term is compiled into the set of characters that may
stand for it (:data:`SUBSTITUTES`: ``0`` o, ``1`` i/l, ``3`` e, ``4`` a, ``5`` s, ``7`` t, ``@`` a,
``$`` s, and inside a word ``!`` i and ``|`` i/l), and a match must contain at least one real letter:
``f0x`` and ``k1ll`` are caught, a bare "47" never reads as "at". A term without letters (``1488``) is
matched as written.

Matching stays on word boundaries, so a blocked ``fox`` never refuses "box", "firefox" or "a herd of
oxen"; a term of several words matches across any spaces or punctuation between them; a term ending in
``*`` matches every word that starts with the rest (``wolf*``: "wolfpack", "wolfhound", not "wolves").

Each term's pattern is compiled once and cached, and starts with a character set so a search skips
ahead fast: a 2,500-character prompt against 200 terms takes a few milliseconds.

Left out on purpose, because each would refuse ordinary prompts: stretched letters (``fooox``), a word
split by spaces into pieces longer than one letter (``fo x``), a capital ``I`` written for ``l``
(``bail`` and ``ball`` must stay apart), and sounds spelled differently (``ph`` for ``f``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache

# The package reads its data (about 1 MB of JSON) when imported: at start-up, never on the event loop
# while a prompt waits. The table below is built from it on first use.
from confusable_homoglyphs.confusables import confusables_data

#: What the normalised text writes where a separator split a word: read as nothing and as a boundary.
JOINT = "."
#: A term ending in this matches every word that starts with the rest of it.
PREFIX_MARK = "*"
#: The digits and symbols that may stand for a letter inside a word (``1`` and ``|``: i or l).
SUBSTITUTES: Mapping[str, str] = {
    "a": "4@",
    "e": "3",
    "i": "1!|",
    "l": "1|",
    "o": "0",
    "s": "5$",
    "t": "7",
}
#: How a substitute written in a term is kept (``1`` stays ``1``, which stands for i and l).
_TERM_READS = {"0": "o", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i", "|": "1"}
#: Substitutes that are punctuation when they start or end a word.
_EDGE_PUNCTUATION = frozenset("!|")
#: The look-alike of I and l, and of the digit one: the matcher reads it as i or l.
_I_OR_L = "1"

# A character of a word: a letter or digit of any script, or a symbol used for a letter. A separator
# is anything else that is not a space (``_`` included, though regular expressions call it a letter).
_WORDISH = r"(?:[^\W_]|[@$!|])"
_SEPARATOR = r"(?:[^\w\s@$!|]|_)"
_BETWEEN_LETTERS = re.compile(rf"(?<=[^\W_]|[@$!|]){_SEPARATOR}+(?={_WORDISH})")
_SINGLE = rf"(?<!{_WORDISH}){_WORDISH}(?!{_WORDISH})"
_GAP = rf"(?: ?{_SEPARATOR}+ ?| )"
_SPELLED_OUT = re.compile(rf"{_SINGLE}(?:{_GAP}{_SINGLE})+")
_GAPS = re.compile(_GAP)
_SPACES = re.compile(r" {2,}")
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")
_TERM_WORD = re.compile(rf"{_WORDISH}+(?:{re.escape(JOINT)}{_WORDISH}+)*")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")

#: Default-ignorable code points that are neither format characters nor marks (UAX #44).
_IGNORABLE = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2065, *range(0xFFF0, 0xFFF9)})
_TAGS = range(0xE0000, 0xE1000)
#: How many distinct characters the normalisation remembers (a prompt cannot grow it without bound).
_TABLE_LIMIT = 1 << 16


def _clean(ch: str) -> str:
    """Steps 2 and 3 for one character of the case-folded, decomposed text."""
    if ch.isspace():
        return " "
    category = unicodedata.category(ch)
    code = ord(ch)
    if category[0] == "M" or category in ("Cf", "Cc") or code in _IGNORABLE or code in _TAGS:
        return ""
    return ch


def _fold(text: str) -> str:
    """Steps 1 to 3: what a character looks like by the time look-alikes are replaced."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    return "".join(_clean(ch) for ch in decomposed)


@dataclass(frozen=True)
class _Lookalikes:
    """The confusables data, turned around: each character that looks like Latin letters."""

    #: Characters with one Latin reading (``_I_OR_L`` for a look-alike of I and l).
    replace: Mapping[str, str]
    #: Characters that look like different letters in their two cases: the letters.
    ambiguous: Mapping[str, frozenset[str]]


@cache
def _lookalikes() -> _Lookalikes:
    readings: dict[str, set[str]] = {}
    for source, entries in confusables_data.items():
        seen = _fold(source)  # the data's keys as a prompt presents them after steps 1-3
        if len(seen) != 1 or seen.isascii():
            continue
        for entry in entries:
            target: str = entry["c"]
            if target.isascii() and target.isalpha():
                readings.setdefault(seen, set()).add(_I_OR_L if target in ("I", "l") else target.casefold())
    replace: dict[str, str] = {}
    ambiguous: dict[str, frozenset[str]] = {}
    for ch, found in readings.items():
        if found == {"i", _I_OR_L}:
            found = {_I_OR_L}
        if len(found) == 1:
            replace[ch] = found.pop()
            continue
        letters = {letter for reading in found if len(reading) == 1 for letter in _letters_of(reading)}
        if letters:
            ambiguous[ch] = frozenset(letters)
    return _Lookalikes(replace=replace, ambiguous=ambiguous)


def _letters_of(reading: str) -> set[str]:
    return {"i", "l"} if reading == _I_OR_L else {reading}


class _Table(dict[int, str]):
    """The per-character part of the normalisation for ``str.translate``, filled in as characters come."""

    def __missing__(self, code: int) -> str:
        ch = chr(code)
        value = _lookalikes().replace.get(ch) or _clean(ch)
        if value and _OTHER_DIGIT.fullmatch(value):
            value = str(unicodedata.decimal(value))
        if len(self) < _TABLE_LIMIT:
            self[code] = value
        return value


_TABLE = _Table()


def normalise(text: str) -> str:
    """``text`` with its disguises undone (the module docstring lists each step and why).

    Applied to prompts and terms alike. Digits and symbols standing for letters are kept: the matcher
    decides what they stand for.
    """
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    plain = unicodedata.normalize("NFC", decomposed.translate(_TABLE))
    plain = _SPACES.sub(" ", plain).strip()
    plain = _BETWEEN_LETTERS.sub(JOINT, plain)
    return _SPELLED_OUT.sub(lambda run: _GAPS.sub(JOINT, run[0]), plain)


def normalise_term(term: str) -> str | None:
    """The term as the matcher sees it, or ``None`` when nothing of it could match a prompt.

    Words are separated by one space; joints are dropped (``f-o-x`` is the term ``fox``); in a word
    with letters, substitutes become their letter (``f0x`` is ``fox``, ``k1ll`` stays ``k1ll``); a
    trailing :data:`PREFIX_MARK` is kept. Two terms with the same result are the same term. ``None``
    for a term with no letter or digit once invisible characters, marks and punctuation are set aside.
    """
    text = normalise(term)
    prefix = text.endswith(PREFIX_MARK)
    words = []
    for token in _TERM_WORD.findall(text.rstrip(PREFIX_MARK + " ")):
        word = token.replace(JOINT, "").strip("!|")  # an exclamation mark ends a word, it is no letter
        if not _LETTER_OR_DIGIT.search(word):
            continue
        if any(ch.isalpha() for ch in word):
            word = "".join(_TERM_READS.get(ch, ch) for ch in word)
        words.append(word)
    if not words:
        return None
    return " ".join(words) + (PREFIX_MARK if prefix else "")


@cache
def _stand_ins(letter: str) -> frozenset[str]:
    """Every character of a normalised prompt that may stand for ``letter`` of a term."""
    if letter == _I_OR_L:
        return _stand_ins("i") | _stand_ins("l")
    lookalikes = _lookalikes()
    found = {letter, *SUBSTITUTES.get(letter, "")}
    found.update(ch for ch, letters in lookalikes.ambiguous.items() if letter in letters)
    for reading in lookalikes.ambiguous.get(letter, ()):
        found |= _stand_ins(reading)
    return frozenset(found)


def _word(word: str, *, open_ended: bool) -> list[str]:
    """One pattern per character of a term's word: what may stand for it in a prompt.

    In a word without letters (``1488``) every character is itself. ``!`` and ``|`` stand for a letter
    only inside a word: at its edges they are punctuation ("kill!" is no "killi").
    """
    if not any(ch.isalpha() for ch in word):
        return [re.escape(ch) for ch in word]
    parts = []
    for n, ch in enumerate(word):
        chars = _stand_ins(ch)
        if n == 0 or (n == len(word) - 1 and not open_ended):
            chars -= _EDGE_PUNCTUATION
        parts.append("[" + "".join(re.escape(c) for c in sorted(chars)) + "]")
    return parts


@dataclass(frozen=True)
class _Matcher:
    pattern: re.Pattern[str]
    #: Whether a match must contain a letter (always, unless the term itself has none, like ``1488``).
    needs_letter: bool

    def found_in(self, text: str) -> bool:
        position = 0
        while (match := self.pattern.search(text, position)) is not None:
            if not self.needs_letter or any(ch.isalpha() for ch in match[0]):
                return True
            position = match.start() + 1
        return False


@lru_cache(maxsize=4096)
def _matcher(term: str) -> _Matcher | None:
    key = normalise_term(term)
    if key is None:
        return None
    prefix = key.endswith(PREFIX_MARK)
    words = key.rstrip(PREFIX_MARK).split(" ")
    joint = re.escape(JOINT) + "?"
    first, *rest = [_word(word, open_ended=prefix and n == len(words) - 1) for n, word in enumerate(words)]
    # The word boundary before the term is checked just after its first character (a lookbehind two
    # characters wide), so the pattern starts with a character set and ``search`` skips ahead fast.
    body = first[0] + r"(?<![^\W_].)" + "".join(joint + part for part in first[1:])
    body += "".join(r"[\W_]+" + joint.join(word) for word in rest)
    end = rf"(?:{joint}{_WORDISH})*" if prefix else r"(?![^\W_])"
    return _Matcher(pattern=re.compile(body + end), needs_letter=any(ch.isalpha() for ch in key))


def find_blocked_term(prompt: str, terms: Iterable[str]) -> str | None:
    """The first blocklisted term the prompt contains, as the admin wrote it, or ``None``."""
    text = normalise(prompt)
    for term in terms:
        matcher = _matcher(term)
        if matcher is not None and matcher.found_in(text):
            return term
    return None
