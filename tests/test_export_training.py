"""CoNLL and spaCy DocBin exports of extraction tasks, ready for training."""

from __future__ import annotations

from pathlib import Path

import pytest
from spacy.tokens import DocBin
from sqlalchemy.engine import Engine

from core.demo import load_demo
from core.errors import ValidationError
from core.exporters import ExportOptions, export_project, parse_rows
from core.tokenize import get_nlp
from tests.fixtures_export import LabeledDemo, labeled_demo, seed_project


@pytest.fixture()
def demo(engine: Engine) -> LabeledDemo:
    return labeled_demo(engine)


def test_conll_is_one_token_per_line_with_bio_tags(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    out = tmp_path / "e.conll"
    result = export_project(engine, project=demo.name, out=out,
                            options=ExportOptions(format="conll", rows=parse_rows("labeled"), tasks=("entities",)))
    assert result.records == 2
    blocks = out.read_text(encoding="utf-8").split("\n\n")
    assert blocks[-1] == ""
    first = [line.split("\t") for line in blocks[0].splitlines()]
    assert all(len(parts) == 2 for parts in first)
    assert [tag for _, tag in first[:4]] == ["B-CHANNEL", "O", "B-LINK", "I-LINK"]
    assert first[0][0] == "Huh"
    assert [tag for _, tag in [line.split("\t") for line in blocks[1].splitlines()]][:3] == ["O", "B-LINK", "O"]


def test_conll_of_weak_supervision(engine: Engine, tmp_path: Path) -> None:
    seed_project(engine)
    out = tmp_path / "ws.conll"
    export_project(engine, project="clickbait", out=out, options=ExportOptions(format="conll",
                                                                                sources=("WEAK_SUPERVISION",)))
    assert out.read_text(encoding="utf-8") == (
        "$\tB-MONEY\n200\tI-MONEY\nLaptops\tO\nBreak\tO\na\tO\nBusiness\tO\nModel\tO\n\n"
    )


def test_spacy_docbin_holds_entities_spans_and_cats(engine: Engine, demo: LabeledDemo, tmp_path: Path) -> None:
    out = tmp_path / "train.spacy"
    export_project(engine, project=demo.name, out=out, options=ExportOptions(format="spacy",
                                                                              rows=parse_rows("labeled")))
    docs = list(DocBin().from_disk(out).get_docs(get_nlp("blank:en").vocab))
    by_key = {doc.user_data["key"]: doc for doc in docs}
    a = by_key[demo.keys[0]]
    assert [(e.text, e.label_) for e in a.ents] == [("Huh", "CHANNEL"), ("anyway check", "LINK")]
    assert [s.label_ for s in a.spans["entities"]] == ["CHANNEL", "LINK"]
    assert a.cats == {"spam:spam": 1.0, "spam:ham": 0.0, "topics:music": 1.0, "topics:promo": 1.0,
                      "topics:other": 0.0}
    assert a.text.startswith("Huh, anyway check out")
    assert by_key[demo.keys[2]].cats["spam:ham"] == 1.0  # the gold label


def test_token_formats_need_an_extraction_task(engine: Engine, tmp_path: Path) -> None:
    load_demo(engine)
    for fmt in ("conll", "spacy"):
        with pytest.raises(ValidationError, match="no extraction task"):
            export_project(engine, project="YouTube spam (demo)", out=tmp_path / "x", options=ExportOptions(format=fmt))
