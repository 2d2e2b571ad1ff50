"""normalize_text: LibriSpeech-style upper/lower modes, 'none', unicode handling."""

import pytest

from slamasr.text import normalize_text


@pytest.mark.parametrize(
    ("raw", "upper"),
    [
        ("Hello, world!", "HELLO WORLD"),
        ("Don\u2019t stop, Mr. Smith.", "DON'T STOP MR SMITH"),  # curly apostrophe kept
        ("'tis the students' book", "TIS THE STUDENTS BOOK"),  # edge apostrophes dropped
        ("twenty-one \u2014 that\u2019s it", "TWENTY ONE THAT'S IT"),  # dashes split words
        ("caf\u00e9 Zo\u00eb na\u00efve", "CAFE ZOE NAIVE"),  # Latin diacritics folded
        ("room 101, 42% done", "ROOM 101 42 DONE"),  # digits kept, symbols dropped
        ("  many \t spaces\n\nhere ", "MANY SPACES HERE"),
        (
            "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440",
            "\u041f\u0420\u0418\u0412\u0415\u0422 \u041c\u0418\u0420",
        ),
        ("\uff28\uff49", "HI"),  # full-width letters (NFKC)
        ("snake_case & <tags>", "SNAKE CASE TAGS"),
        ("...!?", ""),
    ],
)
def test_upper_mode_matches_librispeech_style(raw: str, upper: str) -> None:
    assert normalize_text(raw, "upper") == upper
    assert normalize_text(raw, "lower") == upper.lower()


def test_letters_without_ascii_form_are_kept_and_case_mapped() -> None:
    assert normalize_text("Stra\u00dfe \ufb01ne", "upper") == "STRASSE FINE"
    assert normalize_text("Stra\u00dfe \ufb01ne", "lower") == "stra\u00dfe fine"
    assert normalize_text("\u00e6on", "upper") == "\u00c6ON"


def test_none_mode_only_collapses_whitespace() -> None:
    assert normalize_text("  Don\u2019t,  STOP!\n", "none") == "Don\u2019t, STOP!"


def test_idempotent_on_librispeech_references() -> None:
    ref = "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND CARROTS AND BRUISED POTATOES"
    assert normalize_text(ref, "upper") == ref
    assert normalize_text(normalize_text("It's O.K.", "upper"), "upper") == "IT'S O K"


def test_unknown_mode_is_an_error() -> None:
    with pytest.raises(ValueError, match="upper"):
        normalize_text("x", "title")
