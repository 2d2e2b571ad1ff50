"""The word unigram prior of the joint CTC/LLM search (``decode.scorers.word_prior``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from slamasr.corpora.word_counts import count_words, mix_counts, write_word_counts
from slamasr.decoding.lexicon import WordPrior
from slamasr.decoding.scorers.word_prior import WordPriorConfig, WordPriorScorer, WordStates
from slamasr.decoding.sound_alike import sound_key
from slamasr.decoding.spelling import class_texts
from slamasr.models.ctc_labels import CTCLabels
from tests.decoding.helpers import generate_ids
from tests.decoding.test_search import (  # noqa: F401
    EOS,
    VOCAB,
    batched,
    ctc_scorer,
    llm,
    prompts,
)
from tests.helpers import make_tiny_batch

COUNTS = {"cat": 6.0, "car": 3.0, "cart": 1.0, "dog": 10.0}
TOTAL = sum(COUNTS.values())


def test_lookahead_is_the_mass_of_the_words_with_that_prefix() -> None:
    """Every prefix scores log(sum of p(w) over the words that start with it); a complete
    word scores log p(w); leaving the lexicon costs oov_logp once, whatever follows."""
    prior = WordPrior(COUNTS, oov_logp=-30.0)
    for word in COUNTS:
        for end in range(1, len(word) + 1):
            prefix = word[:end]
            want = sum(c for w, c in COUNTS.items() if w.startswith(prefix)) / TOTAL
            assert math.isclose(prior.lookahead(prefix), math.log(want))
        assert math.isclose(prior.word_score(word), math.log(COUNTS[word] / TOTAL))
    assert prior.lookahead("") == 0.0
    assert prior.lookahead("cx") == prior.lookahead("cxyz") == -30.0
    assert prior.word_score("ca") == -30.0  # a prefix, not a word
    assert prior.word_score("zebra") == -30.0


def test_states_telescope_to_the_sentence_log_probability() -> None:
    """Extending a hypothesis piece by piece (pieces with spaces end words) scores the
    completed words + the look-ahead; at the end exactly sum log p(w)."""
    prior = WordPrior(COUNTS, oov_logp=-30.0)
    state = (0.0, "")
    for piece in ["ca", "t d", "o", "g", " car", "t"]:
        state = prior.extend(state, piece)
    assert state[1] == "cart"
    done = math.log(COUNTS["cat"] / TOTAL) + math.log(COUNTS["dog"] / TOTAL)
    want_final = done + math.log(COUNTS["cart"] / TOTAL)
    assert math.isclose(prior.score(state), done + prior.lookahead("cart"))
    assert math.isclose(prior.score(state, final=True), want_final)
    assert math.isclose(prior.sentence_score("cat dog cart"), want_final)
    assert math.isclose(prior.sentence_score("cat xx"), math.log(COUNTS["cat"] / TOTAL) - 30.0)


def test_load_reads_counts_folds_case_filters_the_alphabet_and_keeps_the_top(
    tmp_path: Path,
) -> None:
    path = tmp_path / "counts.tsv"
    path.write_text("# comment\nThe\t5\nthe\t5\ncaf\u00e9\t3\ndon't\t2\n\nrare\t1\n")
    prior = WordPrior.load(path, alphabet=" 'abcdefghijklmnopqrstuvwxyz")
    assert set(prior.word_logp) == {"the", "don't", "rare"}  # case folded, "cafe" + accent out
    assert math.isclose(prior.word_score("the"), math.log(10 / 13))
    top = WordPrior.load(path, max_words=2, alphabet=" 'abcdefghijklmnopqrstuvwxyz")
    assert set(top.word_logp) == {"the", "don't"}
    assert set(WordPrior.load(path).word_logp) == {"The", "the", "caf\u00e9", "don't", "rare"}


@pytest.mark.parametrize(
    "text, match",
    [
        ("the 5\n", r"counts.tsv:1: expected 'word<TAB>count'"),
        ("the\t5\ncat\tmany\n", r"counts.tsv:2: expected"),
        ("the\t0\n", r"counts.tsv:1: a word needs no spaces and a count > 0"),
        ("two words\t3\n", r"counts.tsv:1: a word needs no spaces"),
        ("\u00e9t\u00e9\t3\n", r"no usable words"),
    ],
)
def test_load_names_the_bad_line(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "counts.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        WordPrior.load(path, alphabet=" abcdefghijklmnopqrstuvwxyz")


def test_missing_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="prepare_word_counts"):
        WordPrior.load(tmp_path / "nope.tsv")


def test_counting_mixing_and_writing(tmp_path: Path) -> None:
    counts = count_words(["the cat sat", "the 2 cats don't", "x-ray the"])
    assert counts == {"the": 3, "cat": 1, "sat": 1, "cats": 1, "don't": 1}
    mixed = mix_counts([({"a": 3.0, "b": 1.0}, 0.5), ({"b": 2.0}, 0.5)])
    assert mixed == {"a": 0.375, "b": 0.625}
    path = tmp_path / "lang" / "counts.tsv"
    assert write_word_counts(path, counts, header="from a test") == 5
    lines = path.read_text().splitlines()
    assert lines[0] == "# from a test" and lines[1] == "the\t3"
    assert WordPrior.load(path).word_logp.keys() == counts.keys()


def test_class_texts_read_the_class_table() -> None:
    table, lengths = torch.tensor([[1, 2], [2, 0], [0, 0]]), torch.tensor([2, 1, 0])
    assert class_texts(table, lengths, " ab") == [" a", "a", None]


def test_scorer_scores_candidates_and_follows_the_picks() -> None:
    """A word-initial token's space ends the word before it (an empty word at the start,
    scored 0); EOS scores the last word as complete; unspellable tokens leave the state
    alone."""
    prior = WordPrior(COUNTS, oov_logp=-30.0)
    texts = [" ca", " do", None, "x", "g"]
    scorer = WordStates(prior, texts, eos_id=3, num_rows=2)
    got = scorer.score(torch.tensor([[0, 1, 3], [1, 2, 4]]))
    want = [
        [prior.lookahead("ca"), prior.lookahead("do"), 0.0],
        [prior.lookahead("do"), 0.0, prior.lookahead("g")],
    ]
    torch.testing.assert_close(got, torch.tensor(want))
    scorer.advance([0, 1], [0, 0])  # row 0: "ca", row 1: "do"
    got = scorer.score(torch.tensor([[3, 1], [4, 3]]))
    want = [
        [-30.0, -30.0 + prior.lookahead("do")],  # EOS: "ca" is no word; " do": "ca" ends
        [prior.lookahead("dog"), -30.0],
    ]
    torch.testing.assert_close(got, torch.tensor(want))
    scorer.advance([1, 1], [0, 1])
    assert scorer.states == [(0.0, "dog"), (0.0, "do")]


def test_prior_decides_what_the_ctc_head_cannot(llm) -> None:  # noqa: F811
    """The character head hears ``c ? b`` with ``?`` equally ``a`` or ``b``: the word prior
    picks the spelling that is the more frequent word, each way round."""
    # classes: 0 blank, 1 ' ', 2 a, 3 b, 4 c; tokens 0 "a", 1 "b", 2 "c", the rest unspellable
    spell = [[2], [3], [4]] + [[]] * (VOCAB - 3)
    table = torch.zeros(VOCAB, 1, dtype=torch.long)
    for tok, classes in enumerate(spell):
        table[tok, : len(classes)] = torch.tensor(classes, dtype=torch.long)
    lengths = torch.tensor([len(c) for c in spell])
    labels = CTCLabels(table, lengths, table, lengths)
    texts = class_texts(table, lengths, " abc")
    logp = torch.full((1, 5, 5), -9.0)
    logp[0, :, 0] = 0.0  # blank elsewhere
    logp[0, 0, 0], logp[0, 0, 4] = -9.0, 0.0  # c
    logp[0, 2, 0], logp[0, 2, 2], logp[0, 2, 3] = -9.0, 0.0, 0.0  # a or b
    logp[0, 4, 0], logp[0, 4, 3] = -9.0, 0.0  # b
    logp = torch.log_softmax(logp, dim=-1)
    seqs = prompts(5, [6])

    def search(prior: WordPrior | None) -> list[list[int]]:
        scorers = [ctc_scorer(logp, torch.tensor([5]), 3, 0.5, VOCAB - 1, labels=labels)]
        if prior is not None:
            scorers.append(WordPriorScorer(WordPriorConfig(weight=2.0), None, prior))
            scorers[-1].begin(texts, EOS, 3)
        return batched(llm, seqs, [6], 3, scorers=scorers)

    for counts, want in (
        ({"cab": 10.0, "cbb": 1.0}, [2, 0, 1]),
        ({"cab": 1, "cbb": 10}, [2, 1, 1]),
    ):
        assert search(WordPrior(counts, oov_logp=-30.0)) == [want]


def test_word_bonus_is_paid_once_per_word_from_its_first_letter() -> None:
    """The bonus joins the look-ahead at a word's first letter and stays to its end, for
    lexicon words and others alike: enough of it makes several words cost less than the same
    letters run together as one non-word."""
    plain = WordPrior(COUNTS, oov_logp=-30.0)
    prior = WordPrior(COUNTS, oov_logp=-30.0, word_bonus=12.0)
    assert prior.lookahead("") == 0.0
    assert math.isclose(prior.lookahead("c"), plain.lookahead("c") + 12.0)
    assert math.isclose(prior.lookahead("cx"), -30.0 + 12.0)
    state = prior.extend((0.0, ""), "cat do")
    assert math.isclose(prior.score(state), plain.word_score("cat") + plain.lookahead("do") + 24)
    assert math.isclose(prior.sentence_score("cat dog"), plain.sentence_score("cat dog") + 24)
    # a cheap non-word: run together beats the two words without a bonus, not with one
    cheap, bonus = WordPrior(COUNTS, oov_logp=-1.0), WordPrior(COUNTS, -1.0, word_bonus=1.0)
    assert cheap.sentence_score("cat dog") < cheap.sentence_score("catdog")
    assert bonus.sentence_score("cat dog") > bonus.sentence_score("catdog")


def test_corrections_are_the_closest_then_most_frequent_lexicon_words() -> None:
    prior = WordPrior({"cat": 6.0, "car": 3.0, "cart": 1.0, "dog": 10.0, "dot": 1.0})
    assert prior.corrections("cat") == []  # a lexicon word is not corrected
    assert prior.corrections("cax") == ["cat", "car", "cart"]  # 1, 1 (less frequent), 2 edits
    assert prior.corrections("cax", max_edits=1) == ["cat", "car"]
    assert prior.corrections("caxt") == ["cat", "cart", "car"]
    assert prior.corrections("caxt", limit=1) == ["cat"]
    assert prior.corrections("zzzzz") == []
    assert prior.corrections("dgo") == ["dog", "dot"]  # a swap is 2 edits
    # "the" has no lexicon word within 2 edits: kept; variant i takes each word's i-th option
    assert prior.corrected_texts("the cax dgo") == ["the cat dog", "the car dot", "the cart dgo"]
    assert prior.corrected_texts("cat dog") == []


def test_splits_and_merges_read_run_together_and_broken_words() -> None:
    counts = {"off": 50.0, "of": 100.0, "early": 20.0, "nearly": 5.0, "podcast": 3.0}
    counts.update({"the": 200.0, "log": 10.0, "a": 150.0, "du": 0.01})
    prior = WordPrior(counts)
    assert prior.word_logp["du"] < prior.short_logp < prior.word_logp["a"]
    # exact two-word reading first, then one side 1 edit away (more probable pair first)
    assert prior.splits("offearly") == ["off early", "of early", "of nearly"]
    assert prior.splits("offearly", limit=1) == ["off early"]
    assert prior.splits("podcast") == []  # a lexicon word
    assert prior.splits("logof") == []  # shorter than split_min_length
    assert prior.splits("apodcast") == ["a podcast"]  # a frequent one-letter word
    assert prior.splits("dupodcast") == []  # a rare two-letter entry splits nothing
    assert prior.merges("podc", "ast") == ["podcast"]
    assert prior.merges("podk", "ast") == ["podcast"]  # joined, then corrected
    assert prior.merges("the", "log") == []  # both words
    # each split or merge is a variant of its own after the per-word corrections
    variants = ["log off early", "log of early", "log of nearly"]
    assert prior.corrected_texts("log offearly") == variants
    assert prior.corrected_texts("the podc ast") == ["the podc a", "the podcast"]


@pytest.mark.parametrize(
    ("heard", "word", "key"),
    [
        ("vagitabels", "vegetables", "vgtbls"),  # vowels off, letters swapped: 4 edits
        ("farmassist", "pharmacist", "frmst"),  # ph = f, soft c = s, doubles collapse
        ("alorges", "allergies", "alrgs"),
        ("biscical", "bicycle", "bskl"),  # hard c = k, y a vowel
        ("axident", "accident", "aksdnt"),  # x = ks, cc = k + s, a leading vowel is "a"
        ("nite", "night", "nt"),  # gh silent
        ("don't", "dont", "dnt"),  # apostrophes ignored
    ],
)
def test_sound_key_joins_spellings_of_one_sound(heard: str, word: str, key: str) -> None:
    assert sound_key(heard) == sound_key(word) == key


def test_sound_key_keeps_different_consonants_apart() -> None:
    keys = [sound_key(w) for w in ["cat", "cap", "bat", "scat", "act", "chat", "at"]]
    assert keys == ["kt", "kp", "bt", "skt", "akt", "kht", "at"]
    assert sound_key("") == ""


def test_sound_alikes_are_same_key_words_fewest_edits_then_most_frequent() -> None:
    counts = {"vegetables": 5.0, "vegetable": 9.0, "vegetablse": 1.0, "fuguetables": 50.0}
    counts.update({"stir": 2.0, "star": 20.0, "store": 30.0, "stereo": 100.0, "cat": 1.0})
    prior = WordPrior(counts)
    assert sound_key("fuguetables") == "fgtbls"  # not vegetables' "vgtbls"
    # vegetables 4 edits, vegetablse 4 (less frequent); vegetable has another key
    assert prior.sound_alikes("vagitabels") == ["vegetables", "vegetablse"]
    assert prior.sound_alikes("vagitabels", limit=1) == ["vegetables"]
    # store, star, stir: 2 edits each, most frequent first
    assert prior.sound_alikes("sturr") == ["store", "star", "stir"]
    # stereo, the most frequent, is 3 edits away: after them
    assert prior.sound_alikes("sturr", limit=4) == ["store", "star", "stir", "stereo"]
    assert prior.sound_alikes("stir") == []  # a lexicon word
    assert prior.sound_alikes("kt") == []  # too short to read by sound
    assert prior.sound_alikes("sturr", limit=0) == []
    # none of them within 2 edits: only sound-alikes reach them
    assert prior.corrections("vagitabels") == []
    assert prior.corrected_texts("cat vagitabels") == []
    assert prior.corrected_texts("cat vagitabels", sound_alikes=2) == [
        "cat vegetables",
        "cat vegetablse",
    ]
    # sound-alikes follow the edit-distance corrections, without repeating them
    assert prior.corrections("sturr", limit=1) == ["store"]
    assert prior.corrected_texts("sturr cat", limit=1, sound_alikes=3) == [
        "store cat",
        "star cat",
        "stir cat",
    ]


@pytest.mark.parametrize("heard", ["red dxg", "reddog"])
def test_corrections_reach_the_search_as_proposals(tmp_path: Path, heard: str) -> None:
    """A head whose best path spells a non-word (misspelt, or two words run together): the
    lexicon reading of it is proposed, so the search (LLM pre-beam of 1) can write it;
    without corrections it cannot."""
    from tests.models.test_char_ctc import _char_model

    # The claim needs an LLM whose top token does not already lead to "red dog": this random
    # tiny LLM, read with the prompt ids of the pieces-apart tokenization, is such an LLM
    # (with the joint ids it happens to write "red dog" from "reddog" on its own).
    model = _char_model(tmp_path, joint_tokenization=False).eval()
    batch = make_tiny_batch("fbank", num=1, durations=[0.6])
    head = model.char_ctc
    frames, _ = model.encode(batch)
    peaked = torch.full((1, frames.shape[1], 1 + len(head.alphabet)), -12.0)
    peaked[..., 0] = 0.0
    for i, c in enumerate(head.encode(heard)):
        peaked[0, 2 * i, 0], peaked[0, 2 * i, c] = -12.0, 0.0
    head.logits = lambda frames: peaked
    path = tmp_path / "words.tsv"
    write_word_counts(path, {"red": 5.0, "dog": 5.0})
    sets = [
        "decode.num_beams=2",
        "decode.min_new_tokens_bound=16",
        "decode.max_new_tokens_per_second=8",
        "decode.scorers.ctc.weight=0.5",
        "decode.scorers.ctc.pre_beam=1",
        "decode.scorers.ctc.head=char",
        f"decode.scorers.word_prior.path={path}",
        "decode.scorers.word_prior.weight=3.0",
    ]

    def text(corrections: int) -> str:
        ids = generate_ids(
            model, batch, *sets, f"decode.scorers.word_prior.corrections={corrections}"
        )
        return model.tokenizer.decode(ids[0], skip_special_tokens=True).strip().lower()

    assert text(2) == "red dog"
    assert text(0) != "red dog"


def test_prepare_word_counts_from_text_and_wordfreq(tmp_path: Path, capsys) -> None:
    """The bin counts normalized words of text files, mixes them with wordfreq's English
    frequencies, keeps the top words, and refuses to overwrite or to run without a source."""
    from slamasr.bin.prepare_word_counts import main

    text = tmp_path / "lm.txt"
    text.write_text("The cat sat.\nThe 2 dogs, the cat!\n")
    out = tmp_path / "lang" / "counts.tsv"
    assert main(["--out", str(out), "--text", str(text)]) == 0
    prior = WordPrior.load(out)
    assert set(prior.word_logp) == {"the", "cat", "sat", "dogs"}
    assert math.isclose(prior.word_score("the"), math.log(3 / 7))
    assert main(["--out", str(out), "--text", str(text)]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "x.tsv")]) == 1
    assert "no source" in capsys.readouterr().err
    assert main(["--out", str(tmp_path / "y.tsv"), "--text", str(tmp_path / "no.txt")]) == 1
    assert "no such file" in capsys.readouterr().err
    pytest.importorskip("wordfreq")
    args = ["--out", str(out), "--overwrite", "--wordfreq", "en", "--max-words", "1000"]
    assert main(args + ["--text", str(text), "--text-weight", "0.5"]) == 0
    mixed = WordPrior.load(out)
    assert len(mixed) == 1000 and "the" in mixed.word_logp and "sat" in mixed.word_logp
    # half the mass is the text's: "the" is 3/7 of it, plus its general share
    assert mixed.word_score("the") > math.log(0.5 * 3 / 7)
