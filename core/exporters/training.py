"""Training data for extraction tasks: CoNLL (BIO) text and spaCy ``DocBin``.

Both use the stored spaCy tokens of the task's attribute and the valid manual
labels (or, when MANUAL is not among the sources, the weak-supervision labels).

- CoNLL: one token per line, a tab, then one BIO tag column per exported
  extraction task (tasks on the same attribute); a blank line ends a record.
  Tokens with whitespace inside are written with ``_`` in its place so the
  columns stay intact.
- spaCy: a ``DocBin`` of one ``Doc`` per record, made with the project's
  tokenizer. The first extraction task fills ``doc.ents`` (overlaps dropped
  with ``spacy.util.filter_spans``) and every extraction task its own
  ``doc.spans[task]``; classification tasks fill ``doc.cats`` (1.0 for the
  valid label, 0.0 for the others; records without one get no cats). The
  record key is in ``doc.user_data["key"]``. Train with ``spacy train`` after
  splitting, or read with ``DocBin().from_disk(path).get_docs(nlp.vocab)``.
"""

from __future__ import annotations

from typing import IO, Any

from core.errors import ValidationError
from core.exporters.options import MANUAL, WEAK_SUPERVISION
from core.exporters.refinery import bio_tags, manual_spans
from core.exporters.view import ProjectView, RecordView, SourceKey
from core.store.models import LabelingTask, TaskKind
from core.tokenize import get_nlp


def extraction_tasks(view: ProjectView) -> list[LabelingTask]:
    """The exported extraction tasks, all on one attribute.

    Raises
    ------
    ValidationError
        When there is none, or they label different attributes (pick tasks of one).
    """
    tasks = [t for t in view.tasks if t.kind == TaskKind.EXTRACTION.value]
    if not tasks:
        raise ValidationError(
            "CoNLL and spaCy exports hold token labels: the exported tasks include no extraction task. "
            "Create one (loupe task add --kind extraction) or pick one with --tasks."
        )
    targets = {t.attribute_id for t in tasks}
    if len(targets) > 1:
        names = ", ".join(f"{t.name} ({getattr(view.target(t), 'name', '?')})" for t in tasks)
        raise ValidationError(
            f"Extraction tasks {names} label different attributes; export the tasks of one attribute at a time."
        )
    return tasks


def _spans(view: ProjectView, record: RecordView, task: LabelingTask, source: SourceKey) -> list[tuple[str, int, int]]:
    if source == (MANUAL, None):
        return [(label, start, end) for label, start, end, _ in manual_spans(record.valid.get(task.id or 0))]
    return [(a.label, a.token_start, a.token_end) for a in record.by(task.id or 0, source)
            if a.token_start is not None and a.token_end is not None]


def _source(view: ProjectView) -> SourceKey:
    if (MANUAL, None) in view.sources or not view.sources:
        return (MANUAL, None)
    if (WEAK_SUPERVISION, None) in view.sources:
        return (WEAK_SUPERVISION, None)
    return view.sources[0]


def write_conll(view: ProjectView, out: IO[str]) -> int:
    """CoNLL text: ``token<TAB>tag[<TAB>tag…]`` lines, a blank line after each record; returns the record count."""
    tasks = extraction_tasks(view)
    source = _source(view)
    attr = view.target(tasks[0])
    attr_id = tasks[0].attribute_id or 0
    n = 0
    for chunk in view.chunks(sources=[source], with_times=False):
        for record in chunk:
            offsets = record.tokens.get(attr_id, [])
            text = "" if attr is None or record.data.get(attr.name) is None else str(record.data[attr.name])
            columns = [bio_tags(len(offsets), [(*s, None) for s in _spans(view, record, t, source)])[0]
                       for t in tasks]
            lines = []
            for i, (start, end) in enumerate(offsets):
                token = "".join("_" if ch.isspace() else ch for ch in text[start:end])
                lines.append("\t".join([token, *(col[i] for col in columns)]))
            out.write("\n".join(lines) + "\n\n" if lines else "\n")
            n += 1
    return n


def write_spacy(view: ProjectView, out: IO[bytes]) -> int:
    """A spaCy ``DocBin`` (binary); returns the record count."""
    from spacy.tokens import DocBin
    from spacy.util import filter_spans

    tasks = extraction_tasks(view)
    source = _source(view)
    attr = view.target(tasks[0])
    nlp = get_nlp(view.project.tokenizer)
    cat_tasks = [t for t in view.tasks if t.kind != TaskKind.EXTRACTION.value]
    doc_bin = DocBin(store_user_data=True)
    n = 0
    # Manual labels are read too: doc.cats holds the valid manual labels of classification tasks.
    for chunk in view.chunks(sources=[source, (MANUAL, None)], with_times=False):
        for record in chunk:
            text = "" if attr is None or record.data.get(attr.name) is None else str(record.data[attr.name])
            doc = nlp.make_doc(text)
            offsets = record.tokens.get(tasks[0].attribute_id or 0, [])
            for i, task in enumerate(tasks):
                spans: list[Any] = []
                for label, start, end in _spans(view, record, task, source):
                    if end > len(offsets):
                        continue
                    span = doc.char_span(offsets[start][0], offsets[end - 1][1], label=label, alignment_mode="expand")
                    if span is not None:
                        spans.append(span)
                doc.spans[task.name] = spans
                if i == 0:
                    doc.ents = filter_spans(spans)
            for task in cat_tasks:
                valid = record.valid.get(task.id or 0)
                if valid is None:
                    continue
                chosen = set(valid) if isinstance(valid, frozenset) else {valid}
                for option in view.labels.get(task.id or 0, []):
                    doc.cats[option.name if len(cat_tasks) == 1 else f"{task.name}:{option.name}"] = (
                        1.0 if option.name in chosen else 0.0
                    )
            doc.user_data["key"] = record.key
            doc_bin.add(doc)
            n += 1
    out.write(doc_bin.to_bytes())
    return n
