"""Word lists of the sentence generator: nouns, verbs with inflections, adjectives, names, places.

The lists live in ``slamasr/corpora/data/*.txt``, one entry per line, ``#`` starts a comment.
Noun lines are ``singular``, ``singular, plural`` (irregular) or ``noun -`` (uncountable). Verb
inflections come from rules plus the exception table ``verb_forms.txt``
(``base past participle [ing]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"

NOUN_CLASSES = ("food", "thing", "place", "person", "animal", "idea", "vehicle")
VERB_FRAMES = ("food", "thing", "person", "place", "idea", "intrans", "motion")
ADJ_CLASSES = ("thing", "person", "food", "place", "idea")
_VOWELS = "aeiou"


@dataclass(frozen=True)
class Noun:
    """A noun with its plural; ``plural`` is None for uncountable nouns."""

    singular: str
    plural: str | None

    @property
    def countable(self) -> bool:
        """Whether the noun takes "a"/"an" and has a plural."""
        return self.plural is not None


@dataclass(frozen=True)
class Verb:
    """A verb (possibly phrasal, e.g. "look for") with all its inflected forms."""

    base: str
    third: str
    past: str
    participle: str
    ing: str


def read_list(name: str) -> list[str]:
    """Reads ``data/<name>.txt``: stripped, non-empty, non-comment lines, first occurrence kept.

    Args:
        name: file stem, e.g. ``"nouns_food"``.

    Returns:
        The entries in file order without duplicates.
    """
    lines = (DATA_DIR / f"{name}.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return list(dict.fromkeys(entries))


def regular_plural(word: str) -> str:
    """Plural by spelling rule: box→boxes, city→cities, day→days, tomato→tomatos."""
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in _VOWELS:
        return word[:-1] + "ies"
    return word + "s"


def third_person(verb: str) -> str:
    """Third person singular present by rule: go→goes, try→tries, play→plays."""
    if verb in ("have",):
        return "has"
    if verb.endswith(("s", "x", "z", "ch", "sh", "o")):
        return verb + "es"
    if verb.endswith("y") and verb[-2:-1] not in _VOWELS:
        return verb[:-1] + "ies"
    return verb + "s"


def regular_past(verb: str) -> str:
    """Past tense by rule: bake→baked, try→tried, play→played, walk→walked."""
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and verb[-2:-1] not in _VOWELS:
        return verb[:-1] + "ied"
    return verb + "ed"


def present_participle(verb: str) -> str:
    """The -ing form by rule: make→making, see→seeing, tie→tying, walk→walking."""
    if verb.endswith("ie"):
        return verb[:-2] + "ying"
    if verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")) and len(verb) > 2:
        return verb[:-1] + "ing"
    return verb + "ing"


@lru_cache(maxsize=1)
def _verb_exceptions() -> dict[str, tuple[str, ...]]:
    table = {}
    for line in read_list("verb_forms"):
        forms = line.split()
        table[forms[0]] = tuple(forms[1:])
    return table


def make_verb(entry: str) -> Verb:
    """Inflects a verb entry; a phrasal verb ("wait for") inflects its first word.

    Args:
        entry: base form, e.g. ``"buy"`` or ``"listen to"``.

    Returns:
        The verb with all forms.
    """
    head, _, rest = entry.partition(" ")
    tail = f" {rest}" if rest else ""
    exc = _verb_exceptions().get(head, ())
    past = exc[0] if exc else regular_past(head)
    participle = exc[1] if len(exc) > 1 else past
    ing = exc[2] if len(exc) > 2 else present_participle(head)
    return Verb(
        base=entry,
        third=third_person(head) + tail,
        past=past + tail,
        participle=participle + tail,
        ing=ing + tail,
    )


def _parse_noun(line: str) -> Noun:
    """Parses ``singular``, ``singular, plural`` or ``noun -`` (uncountable)."""
    if line.endswith(" -"):
        return Noun(line[:-2].strip(), None)
    singular, _, plural = (part.strip() for part in line.partition(","))
    return Noun(singular, plural or regular_plural(singular))


@dataclass(frozen=True)
class Lexicon:
    """All word lists, loaded once (see :func:`load_lexicon`)."""

    nouns: dict[str, tuple[Noun, ...]]
    verbs: dict[str, tuple[Verb, ...]]
    adjectives: dict[str, tuple[str, ...]]
    adverbs: tuple[str, ...]
    female_names: tuple[str, ...]
    male_names: tuple[str, ...]
    surnames: tuple[str, ...]
    cities: tuple[str, ...]
    countries: tuple[str, ...]

    def words(self) -> set[str]:
        """Every word type the lists can produce, inflections included."""
        phrases: list[str] = []
        for nouns in self.nouns.values():
            phrases += [n.singular for n in nouns] + [n.plural for n in nouns if n.plural]
        for verbs in self.verbs.values():
            phrases += [f"{v.base} {v.third} {v.past} {v.participle} {v.ing}" for v in verbs]
        for adjectives in self.adjectives.values():
            phrases += list(adjectives)
        phrases += list(self.adverbs) + list(self.female_names) + list(self.male_names)
        phrases += list(self.surnames) + list(self.cities) + list(self.countries)
        return {word for phrase in phrases for word in phrase.split()}


@lru_cache(maxsize=1)
def load_lexicon() -> Lexicon:
    """Loads and inflects every word list under ``slamasr/corpora/data``."""
    return Lexicon(
        nouns={c: tuple(_parse_noun(x) for x in read_list(f"nouns_{c}")) for c in NOUN_CLASSES},
        verbs={f: tuple(make_verb(x) for x in read_list(f"verbs_{f}")) for f in VERB_FRAMES},
        adjectives={c: tuple(read_list(f"adj_{c}")) for c in ADJ_CLASSES},
        adverbs=tuple(read_list("adverbs")),
        female_names=tuple(read_list("names_female")),
        male_names=tuple(read_list("names_male")),
        surnames=tuple(read_list("surnames")),
        cities=tuple(read_list("cities")),
        countries=tuple(read_list("countries")),
    )
