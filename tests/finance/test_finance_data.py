"""Finance readers: PhraseBank, CSV, TSV, JSONL on files the tests write; errors name file and line."""

from __future__ import annotations

import json

import pytest

from crossfuse.errors import DataError
from crossfuse_finance.data import read_csv, read_jsonl, read_phrasebank, read_tsv
from crossfuse_finance.task import FinanceData


def test_phrasebank_is_latin1_and_splits_on_the_last_at(tmp_path):
    path = tmp_path / "Sentences_AllAgree.txt"
    path.write_bytes("Tähti Oyj profit rose@positive\n\nContact ir@company.com for details@neutral\n".encode("latin-1"))
    examples = read_phrasebank(path)
    assert [(e.text, e.label) for e in examples] == [("Tähti Oyj profit rose", "positive"),
                                                     ("Contact ir@company.com for details", "neutral")]
    assert examples[1].where == f"{path}, line 3"


def test_phrasebank_line_without_at_names_file_and_line(tmp_path):
    path = tmp_path / "Sentences_50Agree.txt"
    path.write_text("Sales grew@positive\nNo label on this line\n", encoding="latin-1")
    with pytest.raises(DataError, match=r"Sentences_50Agree.txt, line 2: expected 'sentence@label'"):
        read_phrasebank(path)


def test_csv_with_quoted_commas_and_custom_columns(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text('id,sentence,sentiment\n1,"Revenue rose 5%, beating estimates",positive\n', encoding="utf-8")
    examples = read_csv(path, FinanceData(text_column="sentence", label_column="sentiment"))
    assert [(e.text, e.label) for e in examples] == [("Revenue rose 5%, beating estimates", "positive")]


def test_csv_missing_column_lists_the_columns_found(tmp_path):
    path = tmp_path / "news.csv"
    path.write_text("headline,label\nShares fell,negative\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 1: no column 'text' in the header \('headline', 'label'\)"):
        read_csv(path, FinanceData())


def test_non_utf8_csv_is_refused_with_its_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"text,label\nok,neutral\n\xe4\xe4 profit,positive\n")
    with pytest.raises(DataError, match=r"latin.csv, line 3: not valid utf-8-sig text.*data.encoding"):
        read_csv(path, FinanceData())
    assert read_csv(path, FinanceData(encoding="latin-1"))[1].text == "ää profit"


def test_empty_csv_and_empty_cells_are_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match="the file is empty"):
        read_csv(empty, FinanceData())
    blank = tmp_path / "blank.csv"
    blank.write_text("text,label\nProfit rose,\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 2: empty 'label'"):
        read_csv(blank, FinanceData())


def test_tsv_and_jsonl_read_the_same_examples(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text("text\tlabel\nOrders doubled, again\tpositive\n", encoding="utf-8")
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text(json.dumps({"text": "Orders doubled, again", "label": "positive"}) + "\n\n", encoding="utf-8")
    assert [(e.text, e.label) for e in read_tsv(tsv, FinanceData())] == \
        [(e.text, e.label) for e in read_jsonl(jsonl, FinanceData())] == [("Orders doubled, again", "positive")]


def test_jsonl_invalid_line_is_named(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a", "label": "neutral"}\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a.jsonl, line 2: not valid JSON"):
        read_jsonl(path, FinanceData())


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="missing.csv' does not exist"):
        read_csv(tmp_path / "missing.csv", FinanceData())
