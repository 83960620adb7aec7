"""Loading tasks from files and objects, and deterministic splits and epochs."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skilltrain.data import (
    DataError,
    FieldMap,
    Task,
    epoch_batches,
    load_tasks,
    split_tasks,
    tasks_from_objects,
)


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


ROWS = [
    {"id": "a", "input": "1+1?", "answer": "2", "type": "add", "source": "book"},
    {"id": "b", "input": "2*3?", "answer": 6, "type": "mul"},
    {"id": "c", "input": {"q": "3-1?"}, "answer": "2"},
]


def test_load_jsonl_default_fields(tmp_path):
    tasks = load_tasks(write_jsonl(tmp_path / "t.jsonl", ROWS))
    assert [t.id for t in tasks] == ["a", "b", "c"]
    assert tasks[0] == Task(id="a", input="1+1?", answer="2", type="add", meta={"source": "book"})
    assert tasks[1].answer == 6 and tasks[1].meta == {}
    assert json.loads(tasks[2].input) == {"q": "3-1?"}  # non-string input is JSON text
    assert tasks[2].type == "default"


def test_load_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    path = tmp_path / "file.jsonl"
    path.write_text(
        json.dumps(ROWS[0]) + "\n\n" + json.dumps({"id": "z", "input": "q"}) + "\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError) as info:
        load_tasks(path)
    assert "file.jsonl:3" in str(info.value) and "answer" in str(info.value)


def test_missing_answer_error_names_file_line_and_field(tmp_path):
    rows = [ROWS[0], ROWS[1], {"id": "x", "input": "no answer here"}]
    with pytest.raises(DataError) as info:
        load_tasks(write_jsonl(tmp_path / "file.jsonl", rows))
    msg = str(info.value)
    assert "file.jsonl:3" in msg and "'answer'" in msg


@pytest.mark.parametrize("row", [{"id": "x", "input": "", "answer": "1"},
                                 {"id": "x", "input": "   ", "answer": "1"},
                                 {"id": "x", "answer": "1"}])
def test_empty_input_is_missing(tmp_path, row):
    with pytest.raises(DataError, match=r"t\.jsonl:1: field 'input'"):
        load_tasks(write_jsonl(tmp_path / "t.jsonl", [row]))


def test_invalid_json_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON"):
        load_tasks(path)


def test_row_that_is_not_an_object(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('["a", "b"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"t\.jsonl:1: expected an object"):
        load_tasks(path)


def test_duplicate_ids(tmp_path):
    rows = [ROWS[0], {**ROWS[1], "id": "a"}]
    with pytest.raises(DataError, match="'a' appears twice"):
        load_tasks(write_jsonl(tmp_path / "dup.jsonl", rows))


def test_unsupported_extension(tmp_path):
    path = tmp_path / "tasks.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_tasks(path)
    assert "tasks.txt" in str(info.value) and "'.txt'" in str(info.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_tasks(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no tasks"):
        load_tasks(empty)


def test_load_json_list_and_tasks_object(tmp_path):
    plain = tmp_path / "a.json"
    plain.write_text(json.dumps(ROWS), encoding="utf-8")
    wrapped = tmp_path / "b.json"
    wrapped.write_text(json.dumps({"tasks": ROWS}), encoding="utf-8")
    assert load_tasks(plain) == load_tasks(wrapped) == load_tasks(
        write_jsonl(tmp_path / "c.jsonl", ROWS))


def test_json_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[\n{"id": "a",\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.json:\d+: invalid JSON"):
        load_tasks(bad)
    scalar = tmp_path / "scalar.json"
    scalar.write_text('{"rows": []}', encoding="utf-8")
    with pytest.raises(DataError, match="expected a JSON list"):
        load_tasks(scalar)
    third = tmp_path / "third.json"
    third.write_text(json.dumps([ROWS[0], ROWS[1], {"id": "q", "answer": "1"}]), encoding="utf-8")
    with pytest.raises(DataError, match=r"third\.json:3: field 'input'"):
        load_tasks(third)


def test_load_csv_default_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,input,answer,type,level\nx1,What is 2+2?,4,add,easy\n"
                    'x2,"Say ""hi""",hi,,hard\n', encoding="utf-8")
    tasks = load_tasks(path)
    assert tasks[0] == Task(id="x1", input="What is 2+2?", answer="4", type="add",
                            meta={"level": "easy"})
    assert tasks[1].input == 'Say "hi"' and tasks[1].type == "default"


def test_csv_error_names_the_file_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("id,input,answer\nx1,q1,1\nx2,q2,\n", encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_tasks(path)
    assert "t.csv:3" in str(info.value) and "'answer'" in str(info.value)


def test_custom_field_map(tmp_path):
    rows = [{"qid": 7, "question": "Capital of France?", "gold": "Paris", "type": "geo"},
            {"qid": 8, "question": "Capital of Spain?", "gold": "Madrid", "type": "geo"}]
    fields = FieldMap(id="qid", input="question", answer="gold", type=None)
    tasks = load_tasks(write_jsonl(tmp_path / "t.jsonl", rows), fields)
    assert [t.id for t in tasks] == ["7", "8"]
    assert tasks[0].input == "Capital of France?" and tasks[0].answer == "Paris"
    assert tasks[0].type == "default"  # the type column is not used
    assert tasks[0].meta == {"type": "geo"}
    with pytest.raises(DataError, match="field 'gold'"):
        load_tasks(write_jsonl(tmp_path / "u.jsonl", [{"qid": 1, "question": "q"}]), fields)


def test_ids_generated_when_absent(tmp_path):
    rows = [{"input": "a", "answer": "1"}, {"input": "b", "answer": "2"}]
    tasks = load_tasks(write_jsonl(tmp_path / "t.jsonl", rows))
    assert [t.id for t in tasks] == ["t00000", "t00001"]
    no_id = load_tasks(write_jsonl(tmp_path / "u.jsonl", [{**ROWS[0]}]), FieldMap(id=None))
    assert no_id[0].id == "t00000" and no_id[0].meta == {"id": "a", "source": "book"}


def test_tasks_from_objects():
    given_task = Task(id="k", input="q", answer="a")
    tasks = tasks_from_objects([given_task, {"id": "m", "input": "q2", "answer": "b"}])
    assert tasks[0] is given_task and tasks[1].id == "m"
    with pytest.raises(DataError, match="item 1: field 'answer'"):
        tasks_from_objects([given_task, {"id": "n", "input": "q"}])
    with pytest.raises(DataError, match="appears twice"):
        tasks_from_objects([given_task, given_task])


# -- splits ------------------------------------------------------------------------------------


def make(n: int, types=("default",)) -> list[Task]:
    return [Task(id=f"t{i:03d}", input=f"q{i}", answer=str(i), type=types[i % len(types)])
            for i in range(n)]


def ids(tasks) -> list[str]:
    return [t.id for t in tasks]


def test_split_is_deterministic_and_seed_dependent():
    tasks = make(40)
    a, b = split_tasks(tasks, seed=1), split_tasks(tasks, seed=1)
    assert (ids(a.train), ids(a.val), ids(a.test)) == (ids(b.train), ids(b.val), ids(b.test))
    c = split_tasks(tasks, seed=2)
    assert (ids(a.train), ids(a.val)) != (ids(c.train), ids(c.val))


def test_split_independent_of_input_order():
    tasks = make(30, types=("a", "b"))
    shuffled = list(tasks)
    random.Random(5).shuffle(shuffled)
    a, b = split_tasks(tasks, seed=3), split_tasks(shuffled, seed=3)
    assert ids(a.train) == ids(b.train) and ids(a.val) == ids(b.val)
    assert ids(a.test) == ids(b.test)


def test_split_ratios_disjoint_and_complete():
    tasks = make(40)
    s = split_tasks(tasks, (0.5, 0.25, 0.25), seed=0)
    assert (len(s.train), len(s.val), len(s.test)) == (20, 10, 10)
    assert sorted(ids(s.all())) == ids(tasks)
    assert len(set(ids(s.all()))) == 40
    no_test = split_tasks(tasks, (0.75, 0.25, 0), seed=0)
    assert (len(no_test.train), len(no_test.val), len(no_test.test)) == (30, 10, 0)


def test_split_is_stratified_by_type():
    tasks = make(48, types=("add", "mul", "sub"))
    s = split_tasks(tasks, seed=0)
    for part, want in ((s.train, 8), (s.val, 4), (s.test, 4)):
        counts = {k: sum(t.type == k for t in part) for k in ("add", "mul", "sub")}
        assert counts == {"add": want, "mul": want, "sub": want}


@pytest.mark.parametrize("ratios", [(0.5, 0.5), (-1, 1, 1), (0, 0, 0)])
def test_split_rejects_bad_ratios(ratios):
    with pytest.raises(DataError, match="ratios"):
        split_tasks(make(10), ratios)


def test_split_too_small_raises():
    with pytest.raises(DataError, match="need at least one"):
        split_tasks(make(1))


def test_split_many_small_types_keeps_validation():
    # 10 types with 2 tasks each: 20 tasks is plenty for 10/5/5, but rounding per type
    # (round(0.5) == 0) leaves validation empty and the split fails.
    s = split_tasks(make(20, types=tuple("abcdefghij")), seed=0)
    assert s.train and s.val
    assert sorted(ids(s.all())) == ids(make(20))


task_lists = st.lists(
    st.tuples(st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=6),
              st.sampled_from(["x", "y", "z"])),
    min_size=4, max_size=40, unique_by=lambda p: p[0],
).map(lambda pairs: [Task(id=i, input="q", answer="a", type=k) for i, k in pairs])


@settings(max_examples=100, deadline=None)
@given(tasks=task_lists, seed=st.integers(0, 2**16))
def test_property_split_disjoint_and_complete_single_type(tasks, seed):
    tasks = [Task(id=t.id, input=t.input, answer=t.answer) for t in tasks]
    s = split_tasks(tasks, seed=seed)
    parts = [set(ids(s.train)), set(ids(s.val)), set(ids(s.test))]
    assert sum(len(p) for p in parts) == len(tasks)
    assert parts[0] | parts[1] | parts[2] == set(ids(tasks))
    assert s.train and s.val


@settings(max_examples=100, deadline=None)
@given(tasks=task_lists, seed=st.integers(0, 2**16))
def test_property_split_disjoint_and_complete_any_types(tasks, seed):
    # Any list of at least 4 tasks can be split into non-empty train and validation parts.
    s = split_tasks(tasks, seed=seed)
    parts = [set(ids(s.train)), set(ids(s.val)), set(ids(s.test))]
    assert sum(len(p) for p in parts) == len(tasks)
    assert parts[0] | parts[1] | parts[2] == set(ids(tasks))
    assert s.train and s.val


# -- epochs ------------------------------------------------------------------------------------


def test_epoch_batches_deterministic_per_epoch_and_different_across_epochs():
    train = make(23)
    e1 = epoch_batches(train, 5, epoch=1, seed=0)
    assert [ids(b) for b in e1] == [ids(b) for b in epoch_batches(train, 5, epoch=1, seed=0)]
    assert [len(b) for b in e1] == [5, 5, 5, 5, 3]
    assert sorted(t.id for b in e1 for t in b) == ids(train)
    e2 = epoch_batches(train, 5, epoch=2, seed=0)
    assert [ids(b) for b in e1] != [ids(b) for b in e2]
    other_seed = epoch_batches(train, 5, epoch=1, seed=1)
    assert [ids(b) for b in e1] != [ids(b) for b in other_seed]
    assert ids(train) == [f"t{i:03d}" for i in range(23)]  # input untouched
