"""A six-record project whose filter results, counts and matrices are worked out by hand.

=====  ==================  ========  ======  =====  =====
key    text                channel   length  score  flag
=====  ==================  ========  ======  =====  =====
r1     Free money now      Ads       14      0.5    true
r2     Hello Alice         ads       11      1.5    false
r3     Meeting at noon     Work      15      2.5    true
r4     FREE tickets        Ads       12      —      false
r5     Lunch with Bob      Personal  14      3.0    true
r6     100% free           —         9       0.0    false
=====  ==================  ========  ======  =====  =====

Task ``spam`` (classification: spam, ham):

=====  ========================  =====  ==========  =================
key    manual                    valid  weak (conf)  heuristics
=====  ========================  =====  ==========  =================
r1     alice spam                spam   spam 0.9    h1 spam, h2 spam
r2     alice ham, bob ham        ham    spam 0.55   h1 spam, h2 ham
r3     alice spam, bob ham       —      ham 0.7     —
r4     alice spam, bob ham ★     ham    spam 0.95   h2 spam
r5     —                         —      ham 0.4     h1 ham
r6     —                         —      —           —
=====  ========================  =====  ==========  =================

Task ``ner`` (extraction on ``text``: PER, ORG); token = whitespace word.
r2: alice PER "Alice" (1–2); weak ORG "Alice" (1–2, 0.6); h1 PER 1–2, h2 ORG 1–2.
r5: alice PER "Bob" (2–3); weak PER "Bob" (2–3, 0.8); h1 PER 2–3, h2 ORG 0–1.

Comments: r3 one, r5 two.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine

from core.store import session_scope
from core.store.comments import add_comment
from core.store.models import (
    Annotator,
    Attribute,
    LabelAssociation,
    Project,
    Record,
    RecordTokens,
    SourceType,
)
from core.store.tasks import create_task

TEXTS = {
    "r1": {"text": "Free money now", "channel": "Ads", "length": 14, "score": 0.5, "flag": True},
    "r2": {"text": "Hello Alice", "channel": "ads", "length": 11, "score": 1.5, "flag": False},
    "r3": {"text": "Meeting at noon", "channel": "Work", "length": 15, "score": 2.5, "flag": True},
    "r4": {"text": "FREE tickets", "channel": "Ads", "length": 12, "flag": False},
    "r5": {"text": "Lunch with Bob", "channel": "Personal", "length": 14, "score": 3.0, "flag": True},
    "r6": {"text": "100% free", "length": 9, "score": 0.0, "flag": False},
}
TYPES = {"text": "TEXT", "channel": "CATEGORY", "length": "INTEGER", "score": "FLOAT", "flag": "BOOLEAN"}
MANUAL = {  # key -> [(annotator, label, gold)]
    "r1": [("alice", "spam", False)],
    "r2": [("alice", "ham", False), ("bob", "ham", False)],
    "r3": [("alice", "spam", False), ("bob", "ham", False)],
    "r4": [("alice", "spam", False), ("bob", "ham", True)],
}
WEAK = {"r1": ("spam", 0.9), "r2": ("spam", 0.55), "r3": ("ham", 0.7), "r4": ("spam", 0.95), "r5": ("ham", 0.4)}
HEURISTICS = {"r1": [("h1", "spam"), ("h2", "spam")], "r2": [("h1", "spam"), ("h2", "ham")], "r4": [("h2", "spam")],
              "r5": [("h1", "ham")]}


@dataclass(frozen=True)
class BrowseFixture:
    """Ids of the fixture's project, records (by key), tasks, labels and annotators."""

    project_id: int
    ids: dict[str, int]
    tasks: dict[str, int]
    labels: dict[tuple[str, str], int]
    annotators: dict[str, int]

    def keys(self, record_ids: list[int] | set[int]) -> set[str]:
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i] for i in record_ids}


def _offsets(text: str) -> list[list[int]]:
    out, pos = [], 0
    for word in text.split(" "):
        out.append([pos, pos + len(word)])
        pos += len(word) + 1
    return out


def build_browse_fixture(engine: Engine, *, name: str = "browse") -> BrowseFixture:
    """Write the fixture project (see the module docstring) and return its ids."""
    with session_scope(engine) as session:
        project = Project(name=name)
        session.add(project)
        session.flush()
        pid = project.id or 0
        attrs = []
        for i, (attr, dtype) in enumerate(TYPES.items()):
            attrs.append(Attribute(project_id=pid, name=attr, data_type=dtype, position=i))
        session.add_all(attrs)
        session.flush()
        text_attr = attrs[0]
        ids = {}
        for i, (key, data) in enumerate(TEXTS.items(), start=1):
            record = Record(project_id=pid, running_id=i, key=key, data=data)
            session.add(record)
            session.flush()
            ids[key] = record.id or 0
            session.add(RecordTokens(record_id=record.id or 0, attribute_id=text_attr.id or 0,
                                     offsets=_offsets(data["text"])))
        annotators = {}
        for who in ("alice", "bob"):
            annotator = Annotator(name=f"{who}")
            session.add(annotator)
            session.flush()
            annotators[who] = annotator.id or 0
        spam = create_task(session, project=project, name="spam", kind="classification", labels=["spam", "ham"])
        ner = create_task(session, project=project, name="ner", kind="extraction", attribute="text",
                          labels=["PER", "ORG"])
        from core.store.tasks import list_labels

        labels = {("spam", lb.name): lb.id or 0 for lb in list_labels(session, spam.id or 0)}
        labels.update({("ner", lb.name): lb.id or 0 for lb in list_labels(session, ner.id or 0)})

        def add(key: str, task: str, label: str, source: SourceType, **kw: object) -> None:
            task_id = spam.id if task == "spam" else ner.id
            session.add(LabelAssociation(project_id=pid, record_id=ids[key], task_id=task_id or 0,
                                         label_id=labels[(task, label)], source_type=source.value, **kw))

        for key, given in MANUAL.items():
            for who, label, gold in given:
                add(key, "spam", label, SourceType.MANUAL, annotator_id=annotators[who], is_gold=gold)
        for key, (label, conf) in WEAK.items():
            add(key, "spam", label, SourceType.WEAK_SUPERVISION, confidence=conf)
        for key, hits in HEURISTICS.items():
            for heuristic, label in hits:
                add(key, "spam", label, SourceType.HEURISTIC, source_name=heuristic, confidence=1.0)

        def span(key: str, label: str, source: SourceType, ts: int, te: int, **kw: object) -> None:
            offsets = _offsets(TEXTS[key]["text"])  # type: ignore[arg-type]
            add(key, "ner", label, source, token_start=ts, token_end=te, char_start=offsets[ts][0],
                char_end=offsets[te - 1][1], **kw)

        span("r2", "PER", SourceType.MANUAL, 1, 2, annotator_id=annotators["alice"])
        span("r2", "ORG", SourceType.WEAK_SUPERVISION, 1, 2, confidence=0.6)
        span("r2", "PER", SourceType.HEURISTIC, 1, 2, source_name="h1")
        span("r2", "ORG", SourceType.HEURISTIC, 1, 2, source_name="h2")
        span("r5", "PER", SourceType.MANUAL, 2, 3, annotator_id=annotators["alice"])
        span("r5", "PER", SourceType.WEAK_SUPERVISION, 2, 3, confidence=0.8)
        span("r5", "PER", SourceType.HEURISTIC, 2, 3, source_name="h1")
        span("r5", "ORG", SourceType.HEURISTIC, 0, 1, source_name="h2")
        session.flush()
        add_comment(session, record_id=ids["r3"], text="label unclear", annotator_id=annotators["bob"])
        add_comment(session, record_id=ids["r5"], text="is this spam?")
        add_comment(session, record_id=ids["r5"], text="no", annotator_id=annotators["alice"])
        return BrowseFixture(project_id=pid, ids=ids, tasks={"spam": spam.id or 0, "ner": ner.id or 0},
                             labels=labels, annotators=annotators)
