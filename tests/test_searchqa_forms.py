"""SearchQA rows in the dataset's published forms: `search_results` as a list of result objects,
or as the Hugging Face layout of parallel lists; `context`, ours, wins when present."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from skilltrain.benchmarks import get_benchmark
from skilltrain.benchmarks.base import BenchmarkError

MANIFEST = {"train": ["q1"], "val": ["q2"], "test": ["q3"]}


def folder(tmp_path: Path, rows: list[dict]) -> Path:
    (tmp_path / "split_manifest.json").write_text(json.dumps(MANIFEST))
    (tmp_path / "searchqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def inputs(tmp_path: Path, rows: list[dict]) -> dict[str, str]:
    splits = get_benchmark("searchqa").load(folder(tmp_path, rows))
    return {t.id: t.input for t in splits.all()}


def test_both_published_forms_and_ours(tmp_path):
    rows = [
        {"id": "q1", "question": "Who wrote Hamlet?", "answer": "Shakespeare",
         "search_results": [{"title": "Hamlet - Wiki", "snippet": "a tragedy by Shakespeare",
                             "url": "http://x"}, {"snippet": "performed in 1609"},
                            {"title": "empty", "snippet": None}]},
        {"id": "q2", "question": "Capital of France?", "answer": ["Paris"],
         "search_results": {"urls": ["u1", "u2"], "titles": ["France", "Paris"],
                            "snippets": ["its capital is Paris", "city of light"],
                            "related_links": [None, None]}},
        {"id": "q3", "question": "2 plus 2?", "answer": "4", "context": ["four", "4"],
         "search_results": [{"snippet": "never shown"}]},
    ]
    got = inputs(tmp_path, rows)
    assert "Hamlet - Wiki\na tragedy by Shakespeare\n\nperformed in 1609\n\n" in got["q1"]
    assert "empty" not in got["q1"]  # a null snippet is dropped with its title
    assert "France\nits capital is Paris\n\nParis\ncity of light" in got["q2"]
    assert "four\n\n4" in got["q3"] and "never shown" not in got["q3"]


def test_long_search_results_are_cut_like_a_context(tmp_path):
    from skilltrain.benchmarks.searchqa import CONTEXT_CHARS

    results = [{"title": f"t{i}", "snippet": "z" * 500} for i in range(40)]
    rows = [{"id": q, "question": "Q?", "answer": "a", "search_results": results}
            for q in ("q1", "q2", "q3")]
    assert all(len(text) < CONTEXT_CHARS + 200 for text in inputs(tmp_path, rows).values())


@pytest.mark.parametrize(("results", "message"), [
    ({"titles": ["a"]}, "expected lists 'snippets' and 'titles'"),
    (["just a string"], "expected objects with 'snippet'"),
    ("a string", "expected a list of results or an object"),
])
def test_malformed_search_results_name_the_line(tmp_path, results, message):
    rows = [{"id": "q1", "question": "Q?", "answer": "a", "context": "c"},
            {"id": "q2", "question": "Q?", "answer": "a", "search_results": results}]
    with pytest.raises(BenchmarkError, match=rf"searchqa\.jsonl:2: search_results: {message}"):
        inputs(tmp_path, rows)


def test_a_row_without_id_is_still_an_error(tmp_path):
    rows = [{"question": "Q?", "answer": "a", "search_results": [{"snippet": "s"}]}]
    with pytest.raises(BenchmarkError, match=r"searchqa\.jsonl:1: expected a JSON object with "
                       r"id, question"):
        inputs(tmp_path, rows)
