"""Filter semantics on the hand-made fixture (tests/fixtures_browse.py), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine

from core.errors import NotFoundError, ValidationError
from core.filters import (
    ANY_ATTRIBUTE,
    AnnotatorFilter,
    AttributeFilter,
    AttributeOp,
    CommentFilter,
    ConfidenceFilter,
    Filter,
    HeuristicFilter,
    HeuristicsDisagreeFilter,
    LabelMatch,
    ManualLabelFilter,
    ManualWeakMismatchFilter,
    Sort,
    SortBy,
    WeakLabelFilter,
    compile_filter,
    preset,
)
from core.store import session_scope
from core.store.models import Record
from tests.fixtures_browse import BrowseFixture, build_browse_fixture
from tests.fixtures_pg import db_engine, db_url, pg_cluster, pg_url  # noqa: F401

Op = AttributeOp
A = AttributeFilter
ALL = {"r1", "r2", "r3", "r4", "r5", "r6"}

CASES: list[tuple[str, tuple[object, ...], set[str]]] = [
    # attributes: every operator, case toggle, negation, OR within values
    ("equals, case-insensitive", (A("channel", Op.EQUALS, ("ads",)),), {"r1", "r2", "r4"}),
    ("equals, case-sensitive", (A("channel", Op.EQUALS, ("Ads",), case_sensitive=True),), {"r1", "r4"}),
    ("not equals keeps missing", (A("channel", Op.EQUALS, ("ads",), negate=True),), {"r3", "r5", "r6"}),
    ("equals, two values = OR", (A("channel", Op.EQUALS, ("work", "personal")),), {"r3", "r5"}),
    ("in list", (A("channel", Op.IN_LIST, ("Work", "Personal")),), {"r3", "r5"}),
    ("contains", (A("text", Op.CONTAINS, ("free",)),), {"r1", "r4", "r6"}),
    ("contains, case-sensitive", (A("text", Op.CONTAINS, ("free",), case_sensitive=True),), {"r6"}),
    ("contains a LIKE wildcard literally", (A("text", Op.CONTAINS, ("0%",)),), {"r6"}),
    ("contains underscore literally", (A("text", Op.CONTAINS, ("_",)),), set()),
    ("not contains", (A("text", Op.CONTAINS, ("free",), negate=True),), {"r2", "r3", "r5"}),
    ("begins with", (A("text", Op.BEGINS_WITH, ("free",)),), {"r1", "r4"}),
    ("begins with, case-sensitive", (A("text", Op.BEGINS_WITH, ("FREE",), case_sensitive=True),), {"r4"}),
    ("ends with", (A("text", Op.ENDS_WITH, ("NOON",)),), {"r3"}),
    ("ends with, case-sensitive", (A("text", Op.ENDS_WITH, ("Bob", "bob"), case_sensitive=True),), {"r5"}),
    ("ends with, value longer than text", (A("text", Op.ENDS_WITH, ("x 100% free",), case_sensitive=True),), set()),
    ("between integers", (A("length", Op.BETWEEN, (11, 14)),), {"r1", "r2", "r4", "r5"}),
    ("between, values as text", (A("length", Op.BETWEEN, ("11", "12")),), {"r2", "r4"}),
    ("greater", (A("length", Op.GREATER, (14,)),), {"r3"}),
    ("greater or equal", (A("length", Op.GREATER_EQUAL, (14,)),), {"r1", "r3", "r5"}),
    ("less", (A("length", Op.LESS, (10,)),), {"r6"}),
    ("less or equal float", (A("score", Op.LESS_EQUAL, (0.5,)),), {"r1", "r6"}),
    ("not greater keeps missing", (A("score", Op.GREATER, (1,), negate=True),), {"r1", "r4", "r6"}),
    ("equals on a number", (A("length", Op.EQUALS, (14,)),), {"r1", "r5"}),
    ("contains on a number's digits", (A("length", Op.CONTAINS, ("4",)),), {"r1", "r5"}),
    ("is empty", (A("score", Op.IS_EMPTY),), {"r4"}),
    ("is empty category", (A("channel", Op.IS_EMPTY),), {"r6"}),
    ("boolean", (A("flag", Op.EQUALS, ("true",)),), {"r1", "r3", "r5"}),
    ("boolean negated", (A("flag", Op.EQUALS, (True,), negate=True),), {"r2", "r4", "r6"}),
    ("any attribute", (A(ANY_ATTRIBUTE, Op.CONTAINS, ("bob",)),), {"r5"}),
    ("any attribute incl. key", (A(ANY_ATTRIBUTE, Op.EQUALS, ("r2",)),), {"r2"}),
    ("any attribute negated", (A(ANY_ATTRIBUTE, Op.CONTAINS, ("ads", "free"), negate=True),), {"r3", "r5"}),
    ("any number attribute greater", (A(ANY_ATTRIBUTE, Op.GREATER, (14,)),), {"r3"}),
    ("any attribute equals an integer", (A(ANY_ATTRIBUTE, Op.EQUALS, (14,)),), {"r1", "r5"}),
    ("any attribute equals a number typed as text", (A(ANY_ATTRIBUTE, Op.EQUALS, ("1.5",)),), {"r2"}),
    ("any attribute in list of numbers", (A(ANY_ATTRIBUTE, Op.IN_LIST, ("9", 15)),), {"r3", "r6"}),
    ("any attribute equals text and number", (A(ANY_ATTRIBUTE, Op.EQUALS, ("work", 11)),), {"r2", "r3"}),
    ("any attribute contains digits (numbers, key)", (A(ANY_ATTRIBUTE, Op.CONTAINS, ("4",)),), {"r1", "r4", "r5"}),
    ("any attribute equals true (flags only)", (A(ANY_ATTRIBUTE, Op.EQUALS, ("true",)),), {"r1", "r3", "r5"}),
    ("any attribute not equals a number", (A(ANY_ATTRIBUTE, Op.EQUALS, (14,), negate=True),),
     {"r2", "r3", "r4", "r6"}),
    # manual labels: valid-label semantics for classification
    ("valid manual spam", (ManualLabelFilter("spam", ("spam",)),), {"r1"}),
    ("valid manual ham (agreement, gold)", (ManualLabelFilter("spam", ("ham",)),), {"r2", "r4"}),
    ("any annotator said spam", (ManualLabelFilter("spam", ("spam",), valid_only=False),), {"r1", "r3", "r4"}),
    ("valid manual spam or ham", (ManualLabelFilter("spam", ("spam", "ham")),), {"r1", "r2", "r4"}),
    ("not valid manual ham", (ManualLabelFilter("spam", ("ham",), negate=True),), {"r1", "r3", "r5", "r6"}),
    ("has no manual label", (ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),), {"r5", "r6"}),
    ("has any manual label", (ManualLabelFilter("spam", match=LabelMatch.HAS_ANY),), {"r1", "r2", "r3", "r4"}),
    ("negated has no label", (ManualLabelFilter("spam", match=LabelMatch.HAS_NONE, negate=True),),
     {"r1", "r2", "r3", "r4"}),
    ("extraction manual label", (ManualLabelFilter("ner", ("PER",)),), {"r2", "r5"}),
    # weak supervision
    ("weak label", (WeakLabelFilter("spam", ("spam",)),), {"r1", "r2", "r4"}),
    ("weak label none", (WeakLabelFilter("spam", match=LabelMatch.HAS_NONE),), {"r6"}),
    ("confidence at most", (ConfidenceFilter("spam", maximum=0.6),), {"r2", "r5"}),
    ("confidence at least", (ConfidenceFilter("spam", minimum=0.9),), {"r1", "r4"}),
    ("confidence range", (ConfidenceFilter("spam", minimum=0.5, maximum=0.8),), {"r2", "r3"}),
    ("confidence negated keeps unsupervised", (ConfidenceFilter("spam", maximum=0.6, negate=True),),
     {"r1", "r3", "r4", "r6"}),
    # heuristics
    ("hit by h1", (HeuristicFilter("spam", ("h1",)),), {"r1", "r2", "r5"}),
    ("hit by h1 or h2", (HeuristicFilter("spam", ("h1", "h2")),), {"r1", "r2", "r4", "r5"}),
    ("hit by h2 with spam", (HeuristicFilter("spam", ("h2",), label="spam"),), {"r1", "r4"}),
    ("hit by any heuristic, negated", (HeuristicFilter("spam", negate=True),), {"r3", "r6"}),
    ("heuristics disagree", (HeuristicsDisagreeFilter("spam"),), {"r2"}),
    ("heuristics disagree on overlapping spans only", (HeuristicsDisagreeFilter("ner"),), {"r2"}),
    ("manual differs from weak", (ManualWeakMismatchFilter("spam"),), {"r2", "r4"}),
    ("manual differs from weak, negated", (ManualWeakMismatchFilter("spam", negate=True),),
     {"r1", "r3", "r5", "r6"}),
    ("manual spans differ from weak spans", (ManualWeakMismatchFilter("ner"),), {"r2"}),
    # people and comments
    ("annotator", (AnnotatorFilter(("bob",)),), {"r2", "r3", "r4"}),
    ("annotator of a task", (AnnotatorFilter(("alice",), task="ner"),), {"r2", "r5"}),
    ("has comment", (CommentFilter(),), {"r3", "r5"}),
    ("has no comment", (CommentFilter(negate=True),), {"r1", "r2", "r4", "r6"}),
    # combinations are AND
    ("weak spam AND no comment", (WeakLabelFilter("spam", ("spam",)), CommentFilter(negate=True)),
     {"r1", "r2", "r4"}),
    ("channel ads AND confident", (A("channel", Op.EQUALS, ("ADS",)), ConfidenceFilter("spam", minimum=0.9)),
     {"r1", "r4"}),
    ("unlabeled AND weak ham AND commented", (ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),
                                              WeakLabelFilter("spam", ("ham",)), CommentFilter()), {"r5"}),
    ("empty filter", (), ALL),
]


@pytest.fixture()
def browse(db_engine: Engine) -> BrowseFixture:  # noqa: F811
    return build_browse_fixture(db_engine)


def matching(engine: Engine, fx: BrowseFixture, flt: Filter, style: str) -> set[str]:
    with session_scope(engine) as session:
        where = compile_filter(session, project_id=fx.project_id, flt=flt, style=style)  # type: ignore[arg-type]
        ids = session.execute(select(Record.id).where(where)).scalars().all()
    return fx.keys(list(ids))


def test_filter_semantics(db_engine: Engine, browse: BrowseFixture) -> None:  # noqa: F811
    # One database for all cases (a PostgreSQL database per case would be slow); both SQL styles agree.
    failures = []
    for name, conditions, expected in CASES:
        flt = Filter(conditions)  # type: ignore[arg-type]
        for style in ("exists", "in"):
            got = matching(db_engine, browse, flt, style)
            if got != expected:
                failures.append(f"{name} [{style}]: expected {sorted(expected)}, got {sorted(got)}")
    assert not failures, "\n".join(failures)


def test_filters_round_trip_through_json() -> None:
    flt = Filter(tuple(c for _, conds, _ in CASES for c in conds))  # type: ignore[misc]
    again = Filter.from_json(flt.to_json())
    assert again == flt
    assert hash(again) == hash(flt)
    data = flt.to_dict()
    assert data["version"] == 1
    assert data["conditions"][0] == {"kind": "attribute", "attribute": "channel", "op": "equals", "values": ["ads"],
                                     "case_sensitive": False, "negate": False}


def test_describe_reads_like_the_chips() -> None:
    flt = Filter((A("channel", Op.EQUALS, ("a", "b")), ConfidenceFilter("spam", maximum=0.6, negate=True),
                  ManualLabelFilter("spam", match=LabelMatch.HAS_NONE)))
    assert flt.describe() == [
        "channel equals 'a' or 'b'",
        "not confidence (spam) in [0, 0.6]",
        "manual label (spam): has none",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"conditions": [{"kind": "nope"}]}, "unknown kind 'nope'"),
        ({"conditions": [{"kind": "comment", "colour": 1}]}, "unknown field(s) colour"),
        ({"conditions": [{"kind": "attribute", "attribute": "x", "op": "like"}]}, "op 'like' is not known"),
        ({"conditions": [{"kind": "weak_label"}]}, "is incomplete"),
        ([1, 2], "A filter is an object"),
    ],
)
def test_bad_filter_json_is_refused_with_a_reason(data: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Filter.from_dict(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("condition", "error", "message"),
    [
        (A("nope", Op.EQUALS, ("x",)), NotFoundError, "No attribute 'nope'.*Attributes: text, channel"),
        (A("length", Op.GREATER, ("ten",)), ValidationError, "holds numbers; 'ten' is not one"),
        (A("length", Op.BETWEEN, (1,)), ValidationError, "'between' takes two values"),
        (A("flag", Op.CONTAINS, ("t",)), ValidationError, "true/false"),
        (A("text", Op.CONTAINS, ()), ValidationError, "at least one value"),
        (ManualLabelFilter("nope", ("x",)), NotFoundError, "No labeling task named 'nope'.*'spam', 'ner'"),
        (ManualLabelFilter("spam", ("eggs",)), ValidationError, "no label.*'eggs'.*spam, ham"),
        (ManualLabelFilter("spam"), ValidationError, "at least one label"),
        (AnnotatorFilter(("carol",)), ValidationError, "No annotator.*'carol'.*alice, bob"),
    ],
)
def test_unknown_names_and_bad_values_say_how_to_fix(
    engine: Engine, condition: object, error: type[Exception], message: str
) -> None:
    fx = build_browse_fixture(engine)
    with session_scope(engine) as session, pytest.raises(error, match=message):
        compile_filter(session, project_id=fx.project_id, flt=Filter((condition,)))  # type: ignore[arg-type]


def test_filter_is_limited_to_its_project(engine: Engine) -> None:
    fx = build_browse_fixture(engine)
    with session_scope(engine) as session:
        from core.store.models import Project

        other = Project(name="other")
        session.add(other)
        session.flush()
        session.add(Record(project_id=other.id or 0, running_id=1, key="x", data={"channel": "Ads"}))
    assert matching(engine, fx, Filter((A("channel", Op.EQUALS, ("ads",)),)), "in") == {"r1", "r2", "r4"}


def test_presets_build_filter_and_order() -> None:
    flt, order = preset("unlabeled_random", task="spam", seed=7)
    assert flt == Filter((ManualLabelFilter("spam", match=LabelMatch.HAS_NONE),))
    assert order == Sort(SortBy.RANDOM, seed=7)
    flt, order = preset("low_confidence", task="spam")
    assert flt.conditions[0] == ConfidenceFilter("spam", maximum=0.6)
    assert order == Sort(SortBy.CONFIDENCE, task="spam")
    assert preset("heuristics_disagree", task="t")[0].conditions == (HeuristicsDisagreeFilter("t"),)
    assert preset("manual_weak_mismatch", task="t")[0].conditions == (ManualWeakMismatchFilter("t"),)
    with pytest.raises(ValidationError, match="Unknown preset 'x'; use one of: unlabeled_random"):
        preset("x", task="t")
