"""Lookup lists: terms, JSON import/export, matching on token boundaries, lookup-list heuristics,
lists inside labeling functions, and terms taken from manual spans."""

from __future__ import annotations

import json

import pytest

from core import lookup
from core.cli import main
from core.errors import ConflictError, ValidationError
from core.heuristics import add_labeling_functions, add_lookup_heuristic, run_heuristics, update_heuristic
from core.store import session_scope
from core.tokenize import get_nlp, tokenize_texts
from tests.fixtures_heuristics import Reviews, reviews_fixture  # noqa: F401
from tests.test_heuristics_service import votes


def spans(text: str, terms: list[str], **options: bool) -> list[str]:
    """The matched texts, for readable assertions."""
    offsets = tokenize_texts([text], nlp=get_nlp())[0]
    whole = options.get("whole_tokens", True)
    given = lookup.tokenize_terms(terms) if whole else terms
    found = lookup.find_term_spans(text, offsets, terms=given, **options)
    return [text[offsets[s][0] : offsets[e - 1][1]] for s, e in found]


def test_terms_match_whole_tokens_ignoring_case_by_default() -> None:
    text = "Subscribe to my channel! Subscriber count: subpar, CHECK OUT my channel"
    assert spans(text, ["subscribe", "check out", "my channel"]) == ["Subscribe", "my channel", "CHECK OUT",
                                                                    "my channel"]
    assert spans(text, ["sub"]) == []  # never inside a token
    assert spans(text, ["subscribe"], case_sensitive=True) == []
    assert spans(text, ["sub"], whole_tokens=False) == ["Subscribe", "Subscriber", "subpar"]  # widened to tokens
    # the longest term wins at a position, and spans never overlap
    assert spans("check out my channel", ["check", "check out", "out my"]) == ["check out"]


def test_lists_terms_and_json_round_trip(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        words = lookup.create_list(session, project_id=reviews.project_id, name="fun_words", description="Fun")
        assert lookup.add_terms(session, lookup_list=words, values=lookup.split_pasted("fun\n  great \n\nfun\n")) == [
            "fun", "great"]
        lookup.add_terms(session, lookup_list=words, values=["boring"], comment="not fun", blacklisted=True)
        assert lookup.remove_terms(session, lookup_list=words, values=["great", "missing"]) == 1
        exported = lookup.export_list(session, lookup_list=words)
        with pytest.raises(ConflictError, match="fun_words"):
            lookup.create_list(session, project_id=reviews.project_id, name="fun_words")
        with pytest.raises(ValidationError, match="'not_spam'"):
            lookup.create_list(session, project_id=reviews.project_id, name="not spam")
    assert exported == {"name": "fun_words", "description": "Fun", "terms": [
        {"value": "boring", "comment": "not fun", "blacklisted": True},
        {"value": "fun", "comment": "", "blacklisted": False},
    ]}
    with session_scope(reviews.engine) as session:
        copy, added = lookup.import_list(session, project_id=reviews.project_id, data=json.dumps(exported),
                                         name="fun_copy")
        assert added == 2 and lookup.export_list(session, lookup_list=copy)["terms"] == exported["terms"]
        with pytest.raises(ValidationError, match="not valid JSON"):
            lookup.import_list(session, project_id=reviews.project_id, data=b"{nope")
        with pytest.raises(ValidationError, match="Term 1"):
            lookup.import_list(session, project_id=reviews.project_id, data={"name": "x", "terms": [{"comment": 1}]})
        assert lookup.lookup_terms_for_code(session, project_id=reviews.project_id) == {
            "fun_copy": ["fun"], "fun_words": ["fun"]}  # blacklisted terms are never used
    assert [lookup.python_name(x) for x in ("Not spam", "1st", "class", "PER")] == [
        "not_spam", "list_1st", "class_terms", "per"]


def test_a_lookup_list_heuristic_labels_records_on_token_boundaries(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        words = lookup.create_list(session, project_id=reviews.project_id, name="cues")
        lookup.add_terms(session, lookup_list=words, values=["GO", "Fun", "whole family"])
        h = add_lookup_heuristic(session, project_id=reviews.project_id, task_id=reviews.sentiment,
                                 lookup_list="cues", label="positive")
        hid = h.id or 0
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    # "go" is inside "good" but never a token of its own
    assert votes(reviews.engine, reviews.sentiment) == {"cues_lookup": {"4": "positive", "5": "positive"}}
    with session_scope(reviews.engine) as session:
        update_heuristic(session, heuristic_id=hid, settings={"whole_tokens": False})
        with pytest.raises(ConflictError, match="cues_lookup"):
            lookup.delete_list(session, lookup_list=lookup.get_list(session, project_id=reviews.project_id,
                                                                    name="cues"))
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    assert set(votes(reviews.engine, reviews.sentiment)["cues_lookup"]) == {"1", "3", "4", "5"}


def test_labeling_functions_use_lookup_lists_by_name(reviews: Reviews) -> None:
    with session_scope(reviews.engine) as session:
        words = lookup.create_list(session, project_id=reviews.project_id, name="praise")
        lookup.add_terms(session, lookup_list=words, values=["great", "good"])
        lookup.add_terms(session, lookup_list=words, values=["movie"], blacklisted=True)
        add_labeling_functions(session, project_id=reviews.project_id, task_id=reviews.sentiment, source='''
from knowledge import praise as imported


def praised(record):
    return "positive" if any(t in record["text"].split() for t in praise) else None


def same_by_import(record):
    return "positive" if set(imported) & set(record["text"].split()) else None
''')
    run_heuristics(reviews.engine, project_id=reviews.project_id, task_id=reviews.sentiment)
    expected = {"1": "positive", "3": "positive", "4": "positive", "5": "positive"}
    assert votes(reviews.engine, reviews.sentiment) == {"praised": expected, "same_by_import": expected}


def test_manual_spans_fill_the_list_named_after_the_label(reviews: Reviews) -> None:
    fifth = reviews.record_ids[4]  # "good fun with pizza and friends"
    with session_scope(reviews.engine) as session:
        added = lookup.add_manual_span_terms(session, task_id=reviews.food, record_id=fifth, label="FOOD",
                                             token_start=3, token_end=4)
        again = lookup.add_manual_span_terms(session, task_id=reviews.food, record_id=fifth, label="FOOD",
                                             token_start=3, token_end=4)
        two = lookup.add_manual_span_terms(session, task_id=reviews.food, record_id=fifth, label="FOOD",
                                           token_start=0, token_end=2)
        food = lookup.get_list(session, project_id=reviews.project_id, name="FOOD")  # the label's spelling
        assert [t.value for t in lookup.list_terms(session, lookup_list_id=food.id or 0)] == ["good fun", "pizza"]
        with pytest.raises(ValidationError, match="outside"):
            lookup.add_manual_span_terms(session, task_id=reviews.food, record_id=fifth, label="FOOD",
                                         token_start=5, token_end=9)
    assert (added, again, two) == ("pizza", None, "good fun")


def test_lookup_commands(reviews: Reviews, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "list.json"
    source.write_text(json.dumps({"name": "snacks", "description": "", "terms": ["pizza", {"value": "chips"}]}))
    assert main(["lookup", "import", "--project", "movies", "--file", str(source)]) == 0
    assert main(["lookup", "add", "--project", "movies", "--name", "snacks", "--terms", "nachos,pizza"]) == 0
    assert main(["lookup", "export", "--project", "movies", "--name", "snacks"]) == 0
    out = capsys.readouterr().out
    assert "Imported 2 term(s)" in out and "Added 1 term(s)" in out
    exported = json.loads(out[out.index("{"):])
    assert [t["value"] for t in exported["terms"]] == ["chips", "nachos", "pizza"]


def test_lookup_remove_on_a_missing_list_fails_and_creates_nothing(
    reviews: Reviews, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["lookup", "add", "--project", "movies", "--name", "snacks", "--terms", "pizza"]) == 0
    assert "new lookup list 'snacks'" in capsys.readouterr().out  # add creates a missing list, and says so
    assert main(["lookup", "remove", "--project", "movies", "--name", "snaks", "--terms", "pizza"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no lookup list named 'snaks'" in err.lower() and "existing: 'snacks'" in err
    with session_scope(reviews.engine) as session:
        assert [x.name for x in lookup.list_lists(session, project_id=reviews.project_id)] == ["snacks"]
    assert main(["lookup", "remove", "--project", "movies", "--name", "snacks", "--terms", "pizza"]) == 0
    assert "Removed 1 term(s) in lookup list 'snacks'" in capsys.readouterr().out


def test_manual_spans_go_to_the_list_the_user_made_for_the_label_in_its_own_spelling(reviews: Reviews) -> None:
    fifth = reviews.record_ids[4]  # "good fun with pizza and friends"
    with session_scope(reviews.engine) as session:
        mine = lookup.create_list(session, project_id=reviews.project_id, name="FOOD", description="my list")
        lookup.add_terms(session, lookup_list=mine, values=["nachos"])
        lookup.add_manual_span_terms(session, task_id=reviews.food, record_id=fifth, label="FOOD",
                                     token_start=3, token_end=4)
        assert lookup.lookup_terms_for_code(session, project_id=reviews.project_id) == {"FOOD": ["nachos", "pizza"]}
    assert [lookup.list_name_for_label(x) for x in ("ORG", "Not spam", "class", "knowledge", "B-PER")] == [
        "ORG", "not_spam", "class_terms", "knowledge_terms", "b_per"]
