"""crossfuse_finance.data readers on files written into tmp_path.

PhraseBank (latin-1, ``sentence@label``, split on the last ``@``), CSV, TSV and JSONL; every
error is a DataError that names the file, the line and what to do.
"""

from __future__ import annotations

import json

import pytest

from crossfuse.datasets import resolve_format
from crossfuse.errors import DataError
from crossfuse_finance.data import (
    read_csv,
    read_jsonl,
    read_phrasebank,
    read_tsv,
)
from crossfuse_finance.task import FinanceData


def write_bytes(path, data: bytes):
    path.write_bytes(data)
    return path


def write_text(path, text: str, encoding: str = "utf-8"):
    return write_bytes(path, text.encode(encoding))


def pairs(examples):
    return [(e.text, e.label) for e in examples]


# -- PhraseBank --------------------------------------------------------------------------------


def test_phrasebank_decodes_latin1_by_default(tmp_path):
    path = write_text(tmp_path / "Sentences_AllAgree.txt", "Tähti Oyj profit rose@positive\n", "latin-1")
    assert pairs(read_phrasebank(path)) == [("Tähti Oyj profit rose", "positive")]


def test_phrasebank_splits_on_the_last_at_sign(tmp_path):
    path = write_text(tmp_path / "Sentences_AllAgree.txt", "Contact ir@company.com for details@neutral\n", "latin-1")
    assert pairs(read_phrasebank(path)) == [("Contact ir@company.com for details", "neutral")]


def test_phrasebank_skips_blank_lines_but_keeps_line_numbers(tmp_path):
    path = write_text(tmp_path / "Sentences_AllAgree.txt", "Sales grew@positive\n\n   \nShares fell@negative\n",
                      "latin-1")
    examples = read_phrasebank(path)
    assert pairs(examples) == [("Sales grew", "positive"), ("Shares fell", "negative")]
    assert [e.where for e in examples] == [f"{path}, line 1", f"{path}, line 4"]


def test_phrasebank_line_without_at_names_file_and_line(tmp_path):
    path = write_text(tmp_path / "Sentences_50Agree.txt", "Sales grew@positive\nNo label on this line\n", "latin-1")
    with pytest.raises(DataError) as error:
        read_phrasebank(path)
    assert "Sentences_50Agree.txt" in str(error.value) and "line 2" in str(error.value)


def test_phrasebank_counts_blank_lines_when_naming_the_bad_line(tmp_path):
    path = write_text(tmp_path / "Sentences_50Agree.txt", "Sales grew@positive\n\nno separator\n", "latin-1")
    with pytest.raises(DataError, match="line 3"):
        read_phrasebank(path)


def test_phrasebank_keeps_a_0x85_byte_inside_its_sentence(tmp_path):
    path = write_bytes(tmp_path / "Sentences_AllAgree.txt", b"Sales rose \x85 again@positive\n")
    assert pairs(read_phrasebank(path)) == [("Sales rose \x85 again", "positive")]


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_keeps_commas_inside_quoted_fields(tmp_path):
    path = write_text(tmp_path / "news.csv", 'text,label\n"Revenue rose 5%, beating estimates",positive\n')
    assert pairs(read_csv(path, FinanceData())) == [("Revenue rose 5%, beating estimates", "positive")]


def test_csv_keeps_a_line_break_inside_a_quoted_field(tmp_path):
    path = write_text(tmp_path / "news.csv", 'text,label\n"Revenue rose.\nOutlook raised.",positive\n')
    assert pairs(read_csv(path, FinanceData())) == [("Revenue rose.\nOutlook raised.", "positive")]


def test_csv_reads_custom_column_names_from_the_options(tmp_path):
    path = write_text(tmp_path / "news.csv", "id,sentence,sentiment\n1,Orders fell,negative\n")
    options = FinanceData(text_column="sentence", label_column="sentiment")
    assert pairs(read_csv(path, options)) == [("Orders fell", "negative")]


def test_csv_missing_column_names_it_and_lists_the_columns_found(tmp_path):
    path = write_text(tmp_path / "news.csv", "headline,label\nShares fell,negative\n")
    with pytest.raises(DataError) as error:
        read_csv(path, FinanceData())
    message = str(error.value)
    assert "news.csv" in message and "'text'" in message
    assert "'headline'" in message and "'label'" in message  # the columns that are there


def test_csv_that_is_not_utf8_is_refused_naming_encoding_and_line(tmp_path):
    path = write_bytes(tmp_path / "latin.csv", b"text,label\n\xe4\xe4 profit,positive\n")
    with pytest.raises(DataError) as error:
        read_csv(path, FinanceData())
    message = str(error.value)
    assert "latin.csv" in message and "line 2" in message and "utf-8" in message.lower()


def test_csv_in_latin1_reads_when_the_encoding_is_set(tmp_path):
    path = write_bytes(tmp_path / "latin.csv", b"text,label\n\xe4\xe4 profit,positive\n")
    assert pairs(read_csv(path, FinanceData(encoding="latin-1"))) == [("ää profit", "positive")]


def test_empty_csv_is_refused(tmp_path):
    path = write_text(tmp_path / "empty.csv", "")
    with pytest.raises(DataError, match="empty"):
        read_csv(path, FinanceData())


def test_csv_row_with_an_empty_label_names_the_line(tmp_path):
    path = write_text(tmp_path / "blank.csv", "text,label\nProfit rose,positive\nShares fell,\n")
    with pytest.raises(DataError, match=r"blank.csv, line 3: empty 'label'"):
        read_csv(path, FinanceData())


# -- TSV and JSONL -----------------------------------------------------------------------------


def test_tsv_reads_tab_separated_columns(tmp_path):
    path = write_text(tmp_path / "a.tsv", "text\tlabel\nOrders doubled, again\tpositive\nAGM in May\tneutral\n")
    assert pairs(read_tsv(path, FinanceData())) == [("Orders doubled, again", "positive"), ("AGM in May", "neutral")]


def test_jsonl_reads_one_object_per_line_and_skips_blank_lines(tmp_path):
    lines = [json.dumps({"text": "Net loss widened", "label": "negative"}), "",
             json.dumps({"text": "Profit rose", "label": "positive", "id": 7})]
    path = write_text(tmp_path / "a.jsonl", "\n".join(lines) + "\n")
    assert pairs(read_jsonl(path, FinanceData())) == [("Net loss widened", "negative"), ("Profit rose", "positive")]


def test_jsonl_keeps_a_unicode_line_separator_inside_a_string(tmp_path):
    row = {"text": "Profit rose\u2028again", "label": "positive"}
    path = write_text(tmp_path / "a.jsonl", json.dumps(row, ensure_ascii=False) + "\n")
    assert pairs(read_jsonl(path, FinanceData())) == [("Profit rose\u2028again", "positive")]


def test_jsonl_invalid_json_names_the_line(tmp_path):
    path = write_text(tmp_path / "a.jsonl", '{"text": "a", "label": "neutral"}\n{"text": broken}\n')
    with pytest.raises(DataError, match=r"a.jsonl, line 2: not valid JSON"):
        read_jsonl(path, FinanceData())


# -- files and formats -------------------------------------------------------------------------


@pytest.mark.parametrize("reader", [read_phrasebank, read_csv, read_tsv, read_jsonl])
def test_missing_file_is_named(tmp_path, reader):
    missing = tmp_path / "nowhere" / "missing.data"
    with pytest.raises(DataError, match="does not exist") as error:
        reader(missing, FinanceData())
    assert str(missing) in str(error.value)


@pytest.mark.parametrize("name, expected", [("Sentences_AllAgree.txt", "phrasebank"), ("news.csv", "csv"),
                                            ("NEWS.TSV", "tsv"), ("news.jsonl", "jsonl"), ("news.json", "jsonl")])
def test_auto_format_is_the_registered_reader_of_the_extension(tmp_path, name, expected):
    path = write_text(tmp_path / name, "text,label\n")
    assert resolve_format("finance-sentiment", path, "auto").name == expected


def test_unknown_extension_is_refused_with_the_formats_to_choose_from(tmp_path):
    path = write_text(tmp_path / "news.xlsx", "")
    with pytest.raises(DataError, match=r"news.xlsx: cannot tell its dataset format.*csv \(files .csv\).*data.format"):
        resolve_format("finance-sentiment", path, "auto")
