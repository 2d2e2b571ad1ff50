"""Sentence templates. Each takes a :class:`PhraseBuilder` and returns ``(words, kind)``.

``words`` is the lower-case sentence with commas where a speaker would pause; ``kind`` is
"statement", "question" or "command" (it picks the final punctuation). Register a template with
``@template(weight)``; weights set how often each shape is drawn.
"""

from __future__ import annotations

from collections.abc import Callable

from slamasr.corpora.grammar import (
    DAYS,
    FREQUENCY,
    MONTHS,
    PRONOUNS,
    TENSES,
    Phrase,
    PhraseBuilder,
    clock_words,
    date_words,
    number_words,
    small_number,
    time_expression,
    year_words,
)
from slamasr.corpora.lexicon import make_verb

Template = Callable[[PhraseBuilder], tuple[str, str]]
_REGISTRY: list[tuple[Template, float]] = []
_WEATHER = tuple(
    "sunny|cloudy|windy|rainy|foggy|cold|warm|hot|freezing|chilly|humid|lovely".split("|")
)
_EVENTS = tuple("party meeting concert wedding game lecture festival picnic dinner show".split())
_CONNECTORS = ("and", "but", "so")
_SUBORDINATORS = ("because", "although", "while", "since")
_WANT_VERBS = ("want", "need", "plan", "try", "hope", "decide", "forget", "like", "love")
_GREETINGS = ("hello", "hi", "good morning", "good afternoon", "good evening", "hey")
_FEEL_VERBS = ("feel", "look", "seem", "sound")


def template(weight: float = 1.0) -> Callable[[Template], Template]:
    """Registers a template with a sampling weight."""

    def register(func: Template) -> Template:
        _REGISTRY.append((func, weight))
        return func

    return register


def weighted_templates() -> list[tuple[Template, float]]:
    """All registered templates with their weights."""
    return list(_REGISTRY)


def _maybe(b: PhraseBuilder, text: str, p: float = 0.5) -> str:
    return f" {text}" if b.rng.random() < p else ""


def _clause(b: PhraseBuilder, tense: str | None = None, subject: Phrase | None = None) -> str:
    """A full clause: subject + verb group + object/complement + optional adverbials."""
    tense = tense or b.choice(TENSES)
    subject = subject or b.subject()
    negative = b.rng.random() < 0.15
    roll = b.rng.random()
    if roll < 0.55:
        verb, obj = b.transitive()
        rest = obj
    elif roll < 0.8:
        verb = b.choice(b.lex.verbs["intrans"])
        rest = b.choice(b.lex.adverbs) if b.rng.random() < 0.5 else ""
    else:
        verb = b.choice(b.lex.verbs["motion"])
        rest = f"to {b.place()}" if b.rng.random() < 0.8 else f"to {b.choice(b.lex.cities)}"
    group = b.verb_group(verb, subject.person, tense, negative)
    words = f"{subject.text} {group} {rest}".strip()
    if b.rng.random() < 0.4:
        words += f" {time_expression(b.rng, tense)}"
    return words


def _you_or_subject(b: PhraseBuilder) -> Phrase:
    return Phrase("you", "2") if b.rng.random() < 0.4 else b.subject()


# Statements ------------------------------------------------------------------------------------


@template(8)
def simple_clause(b: PhraseBuilder) -> tuple[str, str]:
    """Any tense: "my cousin has already painted the kitchen"."""
    return _clause(b), "statement"


@template(2)
def frequency_habit(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "she usually walks to the station on mondays"."""
    subject = b.subject()
    verb, obj = b.transitive()
    group = b.verb_group(verb, subject.person, "present")
    when = time_expression(b.rng, "present")
    return f"{subject.text} {b.choice(FREQUENCY)} {group} {obj} {when}", "statement"


@template(2)
def be_adjective(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the students were very tired after the exam"."""
    subject = b.subject()
    tense = b.choice(("present", "past"))
    adverb = b.choice(("very ", "really ", "quite ", "so ", "a little ", "", ""))
    adjective = b.choice(b.lex.adjectives["person"])
    tail = _maybe(b, f"after {b.noun_phrase('idea', definite=True).text}", 0.3)
    return f"{subject.text} {b.be(subject.person, tense)} {adverb}{adjective}{tail}", "statement"


@template(1.5)
def thing_description(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the old wooden chairs in the garage are broken"."""
    cls = b.choice(("thing", "food", "place", "idea", "animal"))
    np = b.noun_phrase(cls, definite=True)
    adj_cls = cls if cls in b.lex.adjectives else "thing"
    where = _maybe(b, f"in {b.place()}", 0.3) if cls in ("thing", "food", "animal") else ""
    be = b.be(np.person, b.choice(("present", "past")))
    return f"{np.text}{where} {be} {b.choice(b.lex.adjectives[adj_cls])}", "statement"


@template(1.5)
def there_is(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "there are seven red apples in the kitchen"."""
    noun = b.noun(b.choice(("thing", "food", "animal", "person")))
    if noun.countable and b.rng.random() < 0.7:
        be = b.choice(("are", "were"))
        amount = b.choice((small_number(b.rng), "some", "a lot of", "no", "too many"))
        head = f"{amount} {noun.plural}"
    else:
        be = b.choice(("is", "was"))
        head = f"some {noun.singular}" if not noun.countable else f"a {noun.singular}"
        head = head.replace("a ", "an ", 1) if noun.singular[0] in "aeiou" else head
    return f"there {be} {head} in {b.place()}", "statement"


@template(1.5)
def wants_to(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "my brother wants to visit the museum next week"."""
    subject = b.subject()
    want = make_verb(b.choice(_WANT_VERBS))
    group = b.verb_group(want, subject.person, b.choice(("present", "past")))
    verb, obj = b.transitive()
    when = _maybe(b, time_expression(b.rng, "future"), 0.4)
    return f"{subject.text} {group} to {verb.base} {obj}{when}", "statement"


@template(1)
def likes_doing(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "we love swimming in the lake on weekends"."""
    subject = b.subject()
    like = b.choice(tuple(v for v in b.lex.verbs["idea"] if v.base in ("like", "love", "hate")))
    activity = b.choice(b.lex.verbs["intrans"])
    group = b.verb_group(like, subject.person, "present", b.rng.random() < 0.2)
    where = _maybe(b, f"in {b.place()}", 0.4)
    return f"{subject.text} {group} {activity.ing}{where}", "statement"


@template(1)
def has_number(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the farmer has twelve goats and three horses"."""
    subject = b.subject()
    have = "has" if subject.person == "3s" else "have"
    have = b.choice((have, "had"))
    first, second = b.noun("animal"), b.noun(b.choice(("animal", "thing")))
    words = f"{subject.text} {have} {small_number(b.rng)} {first.plural}"
    if second.countable and second is not first:
        words += f" and {number_words(b.rng.randint(2, 9))} {second.plural}"
    return words, "statement"


@template(1.5)
def price(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the blue jacket costs forty nine dollars"."""
    np = b.noun_phrase(b.choice(("thing", "food")), plural=False, definite=True)
    cost = b.choice(("costs", "cost", "is", "was"))
    cost = "costs" if cost == "cost" and np.person == "3s" else cost
    amount = number_words(b.rng.randint(2, 999))
    cents = _maybe(b, f"and {number_words(b.rng.randint(5, 95))} cents", 0.25)
    currency = b.choice(("dollars", "euros", "pounds", "dollars"))
    return f"{np.text} {cost} {amount} {currency}{cents}", "statement"


@template(1.5)
def born_or_lives(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "my grandmother was born in dublin in nineteen fifty two"."""
    subject = b.subject()
    place = b.choice(b.lex.cities + b.lex.countries)
    if b.rng.random() < 0.5:
        be = b.be(subject.person, "past")
        return f"{subject.text} {be} born in {place} in {year_words(b.rng.randint(1920, 2020))}", (
            "statement"
        )
    verb = b.choice(("live", "work", "study", "teach", "grew up"))
    tense = b.choice(("present", "past", "perfect"))
    if verb == "grew up":
        return f"{subject.text} grew up in {place}", "statement"
    group = b.verb_group(make_verb(verb), subject.person, tense)
    since = _maybe(b, f"for {small_number(b.rng, 2, 30)} years", 0.4)
    return f"{subject.text} {group} in {place}{since}", "statement"


@template(2)
def schedule(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the meeting starts at half past nine on thursday"."""
    event = b.choice(_EVENTS + ("class", "lesson", "movie", "match", "exam"))
    verb = b.choice(("starts", "begins", "ends", "finishes", "will start", "started"))
    when = f"at {clock_words(b.rng)}"
    day = b.choice((f" on {b.choice(DAYS)}", f" on {date_words(b.rng)}", "", " tomorrow"))
    return f"the {event} {verb} {when}{day}", "statement"


@template(1)
def date_statement(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "her birthday is on the fourth of july"."""
    owner = b.choice(("my", "your", "his", "her", "our", f"{b.name()}'s"))
    thing = b.choice(("birthday", "wedding", "exam", "interview", "flight", "appointment"))
    be = b.choice(("is", "was", "will be"))
    return f"{owner} {thing} {be} on {date_words(b.rng)}", "statement"


@template(1.5)
def weather(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "it was cold and windy in boston last night"."""
    tense = b.choice(("present", "past", "future"))
    be = {"present": "it is", "past": "it was", "future": "it will be"}[tense]
    first, second = b.choice(_WEATHER), b.choice(_WEATHER)
    both = f"{first} and {second}" if first != second and b.rng.random() < 0.4 else first
    where = _maybe(b, f"in {b.choice(b.lex.cities)}", 0.5)
    return f"{be} {both}{where} {time_expression(b.rng, tense)}", "statement"


@template(1)
def never_been(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "my parents have never been to japan"."""
    subject = b.subject()
    have = "has" if subject.person == "3s" else "have"
    adverb = b.choice(("never", "already", "often", "just", "recently"))
    place = b.choice(b.lex.countries + b.lex.cities)
    return f"{subject.text} {have} {adverb} been to {place}", "statement"


@template(1.5)
def travel(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "we took the train to madrid on friday"."""
    subject = b.subject()
    vehicle = b.noun("vehicle").singular
    tense = b.choice(("past", "future", "going_to", "present"))
    city = b.choice(b.lex.cities)
    if b.rng.random() < 0.5:
        group = b.verb_group(make_verb("take"), subject.person, tense)
        words = f"{subject.text} {group} the {vehicle} to {city}"
    else:
        group = b.verb_group(make_verb("travel"), subject.person, tense)
        words = f"{subject.text} {group} to {city} by {vehicle}"
    return f"{words} {time_expression(b.rng, tense)}", "statement"


@template(1)
def takes_minutes(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "it takes about twenty minutes to get to the airport by bus"."""
    unit = b.choice(("minutes", "hours", "minutes"))
    vehicle = _maybe(b, f"by {b.noun('vehicle').singular}", 0.6)
    about = b.choice(("about ", "only ", "nearly ", "at least ", ""))
    amount = small_number(b.rng, 2, 59)
    return f"it takes {about}{amount} {unit} to get to {b.place()}{vehicle}", "statement"


@template(1)
def possession(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "daniel's new bike is in the garage"."""
    owner = b.choice((f"{b.name()}'s", b.choice(("my", "your", "our", "their", "his", "her"))))
    noun = b.noun(b.choice(("thing", "animal")))
    adjective = _maybe(b, b.choice(b.lex.adjectives["thing"]), 0.4).strip()
    head = f"{adjective} {noun.singular}".strip()
    where = b.choice((f"is in {b.place()}", "is missing", f"was found near {b.place()}"))
    return f"{owner} {head} {where}", "statement"


@template(1)
def feelings(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "you look a little tired today"."""
    subject = b.subject()
    verb = b.choice(_FEEL_VERBS)
    group = b.verb_group(make_verb(verb), subject.person, b.choice(("present", "past")))
    degree = b.choice(("a little ", "very ", "rather ", "", ""))
    when = _maybe(b, b.choice(("today", "this morning", "lately", "after the trip")), 0.5)
    return f"{subject.text} {group} {degree}{b.choice(b.lex.adjectives['person'])}{when}", (
        "statement"
    )


# Questions -------------------------------------------------------------------------------------


@template(3)
def yes_no_do(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "does your sister like spicy food" / "did they finish the report yesterday"."""
    subject = _you_or_subject(b)
    tense = b.choice(("present", "past"))
    aux = "did" if tense == "past" else ("does" if subject.person == "3s" else "do")
    verb, obj = b.transitive()
    when = _maybe(b, time_expression(b.rng, tense), 0.4)
    return f"{aux} {subject.text} {verb.base} {obj}{when}", "question"


@template(2)
def yes_no_aux(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "will the children visit the zoo next week" / "have you read the letter"."""
    subject = _you_or_subject(b)
    verb, obj = b.transitive()
    roll = b.rng.random()
    if roll < 0.3:
        aux, form = "will", verb.base
    elif roll < 0.55:
        aux, form = ("has" if subject.person == "3s" else "have"), verb.participle
    elif roll < 0.8:
        aux, form = b.be(subject.person, "present"), verb.ing
    else:
        aux, form = b.choice(("can", "could", "should", "would")), verb.base
    return f"{aux} {subject.text} {form} {obj}", "question"


@template(2.5)
def wh_question(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "where did you put the scissors" / "why is the baby crying"."""
    subject = _you_or_subject(b)
    wh = b.choice(("where", "when", "why", "how", "how often", "what time"))
    if b.rng.random() < 0.5:
        tense = b.choice(("present", "past", "future"))
        aux = {"past": "did", "future": "will"}.get(
            tense, "does" if subject.person == "3s" else "do"
        )
        verb, obj = b.transitive()
        return f"{wh} {aux} {subject.text} {verb.base} {obj}", "question"
    verb = b.choice(b.lex.verbs["intrans"])
    be = b.be(subject.person, b.choice(("present", "past")))
    return f"{wh} {be} {subject.text} {verb.ing}", "question"


@template(1.5)
def where_is(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "where are my keys" / "excuse me, where is the nearest pharmacy"."""
    if b.rng.random() < 0.5:
        np = b.noun_phrase(b.choice(("thing", "animal", "food")), definite=True)
        return f"where {'are' if np.plural else 'is'} {np.text}", "question"
    place = b.noun("place").singular
    polite = b.choice(("excuse me, ", "sorry, ", "", "hi, "))
    return f"{polite}where is the nearest {place}", "question"


@template(1.5)
def how_many(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "how many eggs did you buy at the market"."""
    noun = b.noun(b.choice(("food", "thing", "animal")))
    subject = _you_or_subject(b)
    verb = b.choice(b.lex.verbs["thing"] + b.lex.verbs["food"])
    quantity = f"how many {noun.plural}" if noun.countable else f"how much {noun.singular}"
    tense = b.choice(("present", "past"))
    aux = "did" if tense == "past" else ("does" if subject.person == "3s" else "do")
    where = _maybe(b, f"at {b.place()}", 0.4)
    return f"{quantity} {aux} {subject.text} {verb.base}{where}", "question"


@template(1.5)
def who_did(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "who left the door open" / "who is going to cook dinner tonight"."""
    verb, obj = b.transitive()
    form = b.choice((verb.past, f"is going to {verb.base}", f"will {verb.base}", verb.third))
    return f"who {form} {obj}", "question"


@template(1.5)
def which_prefer(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "which jacket do you prefer, the red one or the green one"."""
    noun = b.noun(b.choice(("thing", "food")))
    adjectives = b.lex.adjectives["thing"]
    first, second = b.choice(adjectives), b.choice(adjectives)
    verb = b.choice(("prefer", "like", "want", "need"))
    if noun.countable and first != second:
        tail = f", the {first} one or the {second} one"
    else:
        tail = ""
    return f"which {noun.singular} do you {verb}{tail}", "question"


@template(1)
def ever_been(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "have you ever been to brazil"."""
    subject = _you_or_subject(b)
    have = "has" if subject.person == "3s" else "have"
    place = b.choice(b.lex.countries + b.lex.cities)
    verb = b.choice(("been to", "lived in", "worked in", "traveled to"))
    return f"{have} {subject.text} ever {verb} {place}", "question"


@template(1)
def how_much(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "how much does the green umbrella cost"."""
    np = b.noun_phrase(b.choice(("thing", "food")), definite=True)
    aux = "do" if np.plural else "does"
    return b.choice((f"how much {aux} {np.text} cost", f"how much is {np.text}")), "question"


@template(1)
def opinion_question(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "what do you think about the new plan"."""
    np = b.noun_phrase(b.choice(("idea", "place", "food", "thing")), definite=True)
    start = b.choice(("what do you think about", "how do you feel about", "did you like"))
    return f"{start} {np.text}", "question"


@template(1)
def time_question(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "what time does the bus to denver leave"."""
    vehicle = b.noun("vehicle").singular
    verb = b.choice(("leave", "arrive", "get here", "stop at the station"))
    aux = b.choice(("does", "did", "will"))
    dest = _maybe(b, f"to {b.choice(b.lex.cities)}", 0.5)
    return f"what time {aux} the {vehicle}{dest} {verb}", "question"


# Commands --------------------------------------------------------------------------------------


@template(2.5)
def command(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "please wash the dishes carefully" / "don't forget to call your aunt tonight"."""
    verb, obj = b.transitive()
    adverb = _maybe(b, b.choice(b.lex.adverbs), 0.3)
    roll = b.rng.random()
    if roll < 0.3:
        return f"please {verb.base} {obj}{adverb}", "command"
    if roll < 0.5:
        return f"don't forget to {verb.base} {obj} {time_expression(b.rng, 'future')}", "command"
    if roll < 0.7:
        return f"{verb.base} {obj}{adverb}, please", "command"
    if roll < 0.85:
        return f"could you {verb.base} {obj} for me", "question"
    return f"try not to {verb.base} {obj}", "command"


@template(1.5)
def lets(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "let's walk to the park after dinner"."""
    verb = b.choice(b.lex.verbs["motion"] + b.lex.verbs["intrans"])
    if verb in b.lex.verbs["motion"]:
        rest = f" to {b.place()}"
    else:
        rest = _maybe(b, f"in {b.place()}", 0.4)
    return f"let's {verb.base}{rest} {time_expression(b.rng, 'future')}", "statement"


@template(1.5)
def put_it(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "put the red cups on the shelf in the kitchen"."""
    thing = b.noun_phrase(b.choice(("thing", "food")), definite=True).text
    prep = b.choice(("on", "in", "under", "next to", "behind", "near"))
    target = b.noun_phrase("thing", plural=False, definite=True).text
    verb = b.choice(("put", "leave", "place", "keep", "hide"))
    where = _maybe(b, f"in {b.place()}", 0.3)
    return f"{verb} {thing} {prep} {target}{where}", "command"


@template(1)
def take_to(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "take the dog to the park before it gets dark"."""
    thing = b.noun_phrase(b.choice(("thing", "animal", "food")), definite=True).text
    verb = b.choice(("take", "bring", "carry", "send"))
    tail = b.choice(("", " before it gets dark", " as soon as you can", " right away", " later"))
    return f"{verb} {thing} to {b.place()}{tail}", "command"


@template(1)
def negative_command(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "don't touch the hot pan" / "never leave the windows open"."""
    verb, obj = b.transitive()
    start = b.choice(("don't", "please don't", "never", "do not"))
    return f"{start} {verb.base} {obj}", "command"


# Compound and complex --------------------------------------------------------------------------


@template(3)
def compound(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "i cooked dinner, and my brother washed the dishes"."""
    tense = b.choice(TENSES)
    return f"{_clause(b, tense)}, {b.choice(_CONNECTORS)} {_clause(b, tense)}", "statement"


@template(2)
def when_clause(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "when we arrived at the station, the train had already left"."""
    first, second = _clause(b, "past"), _clause(b, "past")
    joiner = b.choice(("when", "after", "before", "as soon as"))
    if b.rng.random() < 0.5:
        return f"{joiner} {first}, {second}", "statement"
    return f"{second} {joiner} {first}", "statement"


@template(2)
def conditional(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "if it rains tomorrow, we will stay at home"."""
    first = _clause(b, "present")
    second = _clause(b, b.choice(("future", "modal")))
    joiner = b.choice(("if", "unless", "when", "as long as"))
    return f"{joiner} {first}, {second}", "statement"


@template(2)
def reported(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "anna said that the teacher had finished the report"."""
    speaker = b.subject()
    verb = b.choice(("said", "told me", "thought", "knew", "heard", "explained", "wrote"))
    content = _clause(b, b.choice(("past", "past", "progressive", "perfect")))
    content = content.replace(" is ", " was ").replace(" are ", " were ").replace(" am ", " was ")
    content = content.replace(" has ", " had ").replace(" have ", " had ")
    return f"{speaker.text} {verb} that {content}", "statement"


@template(2)
def opinion(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "i think the new library will open in june"."""
    start = b.choice(("i think", "i hope", "i guess", "i'm sure", "we know", "i believe"))
    start += b.choice((" that", ""))
    return f"{start} {_clause(b, b.choice(('future', 'present', 'past')))}", "statement"


@template(2)
def because(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "we stayed inside because it was raining"."""
    tense = b.choice(("past", "present"))
    return f"{_clause(b, tense)} {b.choice(_SUBORDINATORS)} {_clause(b, tense)}", "statement"


@template(1)
def while_clause(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "my father called while i was cooking dinner"."""
    first = _clause(b, "past")
    subject = b.subject()
    second = _clause(b, "progressive", subject)
    second = second.replace(" is ", " was ", 1).replace(" are ", " were ", 1)
    second = second.replace(" am ", " was ", 1).replace("i am ", "i was ", 1)
    second = second.replace(" right now", "").replace(" at the moment", "")
    return f"{first} while {second}", "statement"


@template(1)
def wh_embedded(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "do you know where the nearest bakery is"."""
    np = b.noun_phrase(b.choice(("place", "thing", "animal")), definite=True)
    be = "are" if np.plural else "is"
    start = b.choice(("do you know", "can you tell me", "i wonder", "nobody knows"))
    kind = "question" if start.startswith(("do", "can")) else "statement"
    return f"{start} {b.choice(('where', 'why', 'how old'))} {np.text} {be}", kind


# Dialogue --------------------------------------------------------------------------------------


@template(1.5)
def greeting(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "good morning anna, how was your weekend"."""
    hello = f"{b.choice(_GREETINGS)} {b.name()}"
    follow = b.choice(
        (
            "how are you today",
            "how was your weekend",
            "it's nice to see you again",
            "did you sleep well",
            f"how was your trip to {b.choice(b.lex.cities)}",
            f"how is your {b.noun('person').singular}",
            "what are you doing here",
            f"are you coming to the {b.choice(_EVENTS)}",
        )
    )
    kind = "statement" if follow.startswith("it's") else "question"
    return f"{hello}, {follow}", kind


@template(1)
def introduce(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "nice to meet you, my name is carlos and i'm from lima"."""
    name = f"{b.choice(b.lex.female_names + b.lex.male_names)} {b.choice(b.lex.surnames)}"
    start = b.choice(("nice to meet you, ", "hi, ", "", "hello everyone, "))
    where = b.choice(b.lex.cities + b.lex.countries)
    job = b.noun("person").singular
    tail = b.choice((f" and i'm from {where}", f" and i work as {_an(job)} {job}", ""))
    return f"{start}my name is {name}{tail}", "statement"


def _an(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


@template(1.5)
def thanks_sorry(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "thanks for the lovely flowers" / "sorry, i can't come to the party on friday"."""
    if b.rng.random() < 0.5:
        np = b.noun_phrase(b.choice(("thing", "food", "idea")), definite=True).text
        tail = b.choice(
            ("", ", it was very kind of you", ", i really like it", ", you're very kind")
        )
        return f"{b.choice(('thanks for', 'thank you for', 'thank you so much for'))} {np}{tail}", (
            "statement"
        )
    event = b.choice(_EVENTS)
    day = b.choice(DAYS)
    start = b.choice(("sorry", "i'm so sorry", "unfortunately"))
    return f"{start}, i can't come to the {event} on {day}", "statement"


@template(1.5)
def reply(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "yes, i'd love some tea" / "no thanks, i already had lunch"."""
    food = b.noun("food")
    thing = food.singular if not food.countable else food.plural
    options = (
        f"yes please, i'd love some {thing}",
        f"no thanks, i already had some {thing}",
        f"could i have {_an(food.singular)} {food.singular}, please"
        if food.countable
        else f"could i have some {thing}, please",
        f"i'll have the {food.singular} and a glass of {b.choice(('water', 'juice', 'milk'))}",
        f"we ran out of {thing} again",
        f"there's no more {thing} in {b.place()}",
    )
    answer = b.choice(options)
    return answer, "question" if answer.startswith("could") else "statement"


@template(1)
def see_you(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "see you at the station at seven thirty"."""
    start = b.choice(("see you", "meet me", "i'll meet you", "let's meet"))
    when = b.choice((f"at {clock_words(b.rng)}", f"on {b.choice(DAYS)}", "tomorrow", "later"))
    return f"{start} at {b.place()} {when}", "statement"


@template(1)
def phone_number(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "my phone number is five five five two one nine eight"."""
    digits = " ".join(number_words(b.rng.randint(0, 9)) for _ in range(b.rng.randint(5, 9)))
    owner = b.choice(("my", "his", "her", "our", "the office", f"{b.name()}'s"))
    thing = b.choice(("phone number", "room number", "code", "number", "flight number"))
    return f"{owner} {thing} is {digits}", "statement"


@template(1)
def platform(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "the train to oslo leaves from platform four at six fifteen"."""
    vehicle = b.choice(("train", "bus", "ferry"))
    gate = b.choice(("platform", "gate", "stop"))
    number = number_words(b.rng.randint(1, 24))
    verb = b.choice(("leaves", "left", "will leave", "departs"))
    city = b.choice(b.lex.cities)
    return f"the {vehicle} to {city} {verb} from {gate} {number} at {clock_words(b.rng)}", (
        "statement"
    )


@template(1)
def month_plan(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "in august we are going to paint the house"."""
    subject = b.subject()
    verb, obj = b.transitive()
    group = b.verb_group(verb, subject.person, b.choice(("going_to", "future")))
    month = b.choice(MONTHS)
    return f"in {month}, {subject.text} {group} {obj}", "statement"


@template(1)
def exclamation(b: PhraseBuilder) -> tuple[str, str]:
    """E.g. "what a beautiful garden" / "how lovely the park looks today"."""
    cls = b.choice(("place", "thing", "food", "idea"))
    adjective = b.choice(b.lex.adjectives[cls])
    noun = b.noun(cls)
    if noun.countable:
        return f"what {_an(adjective)} {adjective} {noun.singular}", "command"
    return f"this {noun.singular} is {b.choice(('so', 'really', 'very'))} {adjective}", "statement"


@template(1)
def pronoun_statement(b: PhraseBuilder) -> tuple[str, str]:
    """Pronoun subjects with perfect/progressive forms: "they have been waiting for hours"."""
    pronoun = b.choice(tuple(PRONOUNS))
    person = PRONOUNS[pronoun]
    verb = b.choice(b.lex.verbs["intrans"])
    have = "has" if person == "3s" else "have"
    duration = f"for {small_number(b.rng, 2, 12)} {b.choice(('hours', 'minutes', 'days'))}"
    return f"{pronoun} {have} been {verb.ing} {duration}", "statement"
