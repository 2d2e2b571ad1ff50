"""Phrase builders of the sentence generator: noun phrases, subjects, verb groups, numbers, times.

Every builder takes a :class:`random.Random` and returns display-form words (lower case;
capitalization is added when the sentence is assembled).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from slamasr.corpora.lexicon import Lexicon, Noun, Verb

T = TypeVar("T")
PRONOUNS = {"i": "1s", "you": "2", "he": "3s", "she": "3s", "we": "1p", "they": "3p"}
OBJECT_PRONOUNS = ("me", "you", "him", "her", "us", "them")
POSSESSIVES = ("my", "your", "his", "her", "our", "their")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january february march april may june july august september october november december"
).split()
TENSES = ("present", "past", "future", "progressive", "perfect", "going_to", "modal")
MODALS = ("can", "could", "should", "might", "must", "would")
FREQUENCY = ("always", "usually", "often", "sometimes", "rarely", "never")
_ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen".split()
_ONES += "fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORDINAL_ONES = "zeroth first second third fourth fifth sixth seventh eighth ninth tenth".split()
_ORDINAL_ONES += "eleventh twelfth thirteenth fourteenth fifteenth sixteenth".split()
_ORDINAL_ONES += "seventeenth eighteenth nineteenth".split()
_ORDINAL_TENS = "_ _ twentieth thirtieth".split()
_AN_EXCEPTIONS = ("hour", "honest", "honor")
_A_EXCEPTIONS = ("uni", "use", "euro", "one", "uk")

TIME_EXPRESSIONS = {
    "past": (
        "yesterday|last night|last week|last month|this morning|earlier today|after lunch|"
        "last year|on {day}|in {month}|{num} days ago|{num} weeks ago|an hour ago|at {clock}"
    ),
    "future": (
        "tomorrow|next week|next month|tonight|later today|this weekend|after dinner|"
        "tomorrow morning|on {day}|in {month}|in {num} minutes|in {num} days|at {clock}|soon"
    ),
    "present": "every day|every morning|on {day}s|at night|on weekends|every {day}|in the evening",
    "progressive": "right now|at the moment|today|this week|this afternoon|again",
    "perfect": "already|this week|recently|since {day}|this year|twice|before",
}


def number_words(n: int) -> str:
    """Spells 0 ≤ n < 1,000,000 in English words without hyphens, e.g. 342 → three hundred
    forty two."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + (f" {_ONES[ones]}" if ones else "")
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return f"{_ONES[hundreds]} hundred" + (f" {number_words(rest)}" if rest else "")
    thousands, rest = divmod(n, 1000)
    return f"{number_words(thousands)} thousand" + (f" {number_words(rest)}" if rest else "")


def ordinal_words(n: int) -> str:
    """Spells an ordinal 1 ≤ n ≤ 31, e.g. 21 → twenty first."""
    if n < 20:
        return _ORDINAL_ONES[n]
    tens, ones = divmod(n, 10)
    return _ORDINAL_TENS[tens] if not ones else f"{_TENS[tens]} {_ORDINAL_ONES[ones]}"


def year_words(year: int) -> str:
    """Spells a year the way it is spoken: 1998 → nineteen ninety eight, 2007 → two thousand
    seven, 1905 → nineteen oh five."""
    if 2000 <= year < 2010:
        return number_words(year)
    high, low = divmod(year, 100)
    if low == 0:
        return f"{number_words(high)} hundred"
    return f"{number_words(high)} " + (f"oh {_ONES[low]}" if low < 10 else number_words(low))


def clock_words(rng: random.Random) -> str:
    """A spoken clock time: "seven thirty", "half past six", "noon", "ten o'clock"."""
    hour = rng.randint(1, 12)
    shape = rng.randrange(6)
    if shape == 0:
        return f"{number_words(hour)} o'clock"
    if shape == 1:
        return f"{rng.choice(('half past', 'a quarter past', 'a quarter to'))} {number_words(hour)}"
    if shape == 2:
        return rng.choice(("noon", "midnight", f"{number_words(hour)} in the morning"))
    minute = rng.choice((5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 12, 48))
    minute_words = f"oh {number_words(minute)}" if minute < 10 else number_words(minute)
    return f"{number_words(hour)} {minute_words}"


def date_words(rng: random.Random) -> str:
    """A spoken date: "the third of may" or "may twenty first"."""
    day = ordinal_words(rng.randint(1, 28))
    month = rng.choice(MONTHS)
    return f"the {day} of {month}" if rng.random() < 0.5 else f"{month} {day}"


def small_number(rng: random.Random, low: int = 2, high: int = 12) -> str:
    """A number in words, mostly small, sometimes up to a few hundred."""
    if rng.random() < 0.8:
        return number_words(rng.randint(low, high))
    return number_words(rng.randint(high + 1, 400))


def time_expression(rng: random.Random, tense: str) -> str:
    """A time adverbial that fits the tense ("yesterday" for past, "tomorrow" for future)."""
    key = tense if tense in TIME_EXPRESSIONS else "present"
    if tense in ("going_to", "modal"):
        key = "future"
    template = rng.choice(TIME_EXPRESSIONS[key].split("|"))
    return template.format(
        day=rng.choice(DAYS),
        month=rng.choice(MONTHS),
        num=small_number(rng, 2, 9),
        clock=clock_words(rng),
    )


def article(word: str) -> str:
    """ "a" or "an" for the word that follows."""
    if word.startswith(_AN_EXCEPTIONS):
        return "an"
    if word.startswith(_A_EXCEPTIONS):
        return "a"
    return "an" if word[0] in "aeiou" else "a"


@dataclass(frozen=True)
class Phrase:
    """Words plus the grammatical person they agree with ("1s", "2", "3s", "1p", "3p")."""

    text: str
    person: str

    @property
    def plural(self) -> bool:
        """Whether the phrase is plural."""
        return self.person in ("1p", "3p")


class PhraseBuilder:
    """Builds phrases from a lexicon with a seeded random generator.

    Args:
        lexicon: the word lists.
        rng: the random generator (owned by the caller, for reproducibility).
    """

    def __init__(self, lexicon: Lexicon, rng: random.Random) -> None:
        self.lex = lexicon
        self.rng = rng

    def choice(self, options: Sequence[T]) -> T:
        """Uniform choice from a sequence."""
        return self.rng.choice(options)

    def noun(self, cls: str) -> Noun:
        """A random noun of a class ("food", "thing", "place", ...)."""
        return self.choice(self.lex.nouns[cls])

    def name(self) -> str:
        """A first name, sometimes with a family name."""
        first = self.choice(self.lex.female_names + self.lex.male_names)
        return f"{first} {self.choice(self.lex.surnames)}" if self.rng.random() < 0.2 else first

    def noun_phrase(self, cls: str, plural: bool | None = None, definite: bool = False) -> Phrase:
        """A determiner + optional adjective + noun phrase.

        Args:
            cls: noun class.
            plural: force number; None picks at random (uncountable nouns stay singular).
            definite: use only definite determiners (the, my, this ...).

        Returns:
            The phrase with its person ("3s" or "3p").
        """
        noun = self.noun(cls)
        if plural is None:
            plural = noun.countable and self.rng.random() < 0.35
        plural = plural and noun.countable
        head = noun.plural if plural else noun.singular
        adj_cls = cls if cls in self.lex.adjectives else "thing"
        if self.rng.random() < 0.35:
            head = f"{self.choice(self.lex.adjectives[adj_cls])} {head}"
        det = self._determiner(head, plural, noun.countable, definite)
        return Phrase(f"{det} {head}".strip(), "3p" if plural else "3s")

    def _determiner(self, head: str, plural: bool, countable: bool, definite: bool) -> str:
        roll = self.rng.random()
        if roll < 0.45:
            return "the"
        if roll < 0.7:
            return self.choice(POSSESSIVES)
        if roll < 0.8:
            return (
                ("these" if plural else "this") if roll < 0.75 else ("those" if plural else "that")
            )
        if definite:
            return "the"
        if plural:
            return self.choice(("some", "two", "three", "a few", "many", small_number(self.rng)))
        return article(head) if countable else self.choice(("some", "more", "a little"))

    def subject(self) -> Phrase:
        """A sentence subject: pronoun, name, pair of names, or person noun phrase."""
        roll = self.rng.random()
        if roll < 0.4:
            pronoun = self.choice(tuple(PRONOUNS))
            return Phrase(pronoun, PRONOUNS[pronoun])
        if roll < 0.65:
            return Phrase(self.name(), "3s")
        if roll < 0.72:
            return Phrase(f"{self.name()} and {self.name()}", "3p")
        if roll < 0.78:
            return Phrase(f"{self.name()} and i", "1p")
        return self.noun_phrase("person", definite=True)

    def person_object(self) -> str:
        """A person as an object: pronoun, name or noun phrase."""
        roll = self.rng.random()
        if roll < 0.3:
            return self.choice(OBJECT_PRONOUNS)
        if roll < 0.6:
            return self.name()
        return self.noun_phrase("person").text

    def place(self) -> str:
        """A destination or location noun phrase without preposition."""
        return self.noun_phrase("place", plural=False, definite=True).text

    def be(self, person: str, tense: str) -> str:
        """Form of "be" for a person in present or past."""
        if tense == "past":
            return "were" if person in ("2", "1p", "3p") else "was"
        return {"1s": "am", "3s": "is"}.get(person, "are")

    def verb_group(self, verb: Verb, person: str, tense: str, negative: bool = False) -> str:
        """Conjugates ``verb`` for the subject's person in one of :data:`TENSES`.

        Args:
            verb: the verb.
            person: "1s", "2", "3s", "1p" or "3p".
            tense: present, past, future, progressive, perfect, going_to or modal.
            negative: add "not" (sometimes contracted).

        Returns:
            The verb group, e.g. "doesn't like", "has visited", "is going to buy".
        """
        third = person == "3s"
        short = self.rng.random() < 0.5
        if tense == "present":
            if not negative:
                return verb.third if third else verb.base
            aux = "does" if third else "do"
            return f"{aux}n't {verb.base}" if short else f"{aux} not {verb.base}"
        if tense == "past":
            if not negative:
                return verb.past
            return f"didn't {verb.base}" if short else f"did not {verb.base}"
        if tense == "future":
            neg = (" not", "won't")[short] if negative else ""
            return f"won't {verb.base}" if neg == "won't" else f"will{neg} {verb.base}"
        if tense == "perfect":
            aux = "has" if third else "have"
            return f"{aux}{' not' if negative else ''} {verb.participle}"
        if tense == "modal":
            modal = self.choice(MODALS)
            if negative:
                modal = {"can": "cannot", "will": "won't"}.get(modal, f"{modal} not")
            return f"{modal} {verb.base}"
        be = self.be(person, "present")
        neg = " not" if negative else ""
        if tense == "going_to":
            return f"{be}{neg} going to {verb.base}"
        return f"{be}{neg} {verb.ing}"

    def object_for(self, frame: str) -> str:
        """An object phrase for a verb frame (food, thing, person, place, idea)."""
        if frame == "person":
            return self.person_object()
        if frame == "place":
            return self.place()
        return self.noun_phrase(frame).text

    def transitive(self) -> tuple[Verb, str]:
        """A random transitive verb with a fitting object."""
        frame = self.choice(("food", "thing", "thing", "person", "place", "idea", "idea"))
        return self.choice(self.lex.verbs[frame]), self.object_for(frame)
