"""`evaluate` and `compare` given a skill's path, over HTTP against our scripted server: a
package folder's files and a .md file's text reach the target (its answers depend on them),
while a string that names nothing on disk is still scored as the skill's text."""

from __future__ import annotations

from scripted import GOOD_RULE, make_tasks
from scripted_package import FORMAT_FILE, write_package

from skilltrain.api import evaluate
from skilltrain.compare import compare

SKILL = "---\nname: adder\ndescription: answers sums\n---\n# Adding\nAdd the two numbers.\n"


def target(server) -> dict:
    return {"model": "scripted-target", "base_url": server.base_url, "retry_backoff": 0.01}


def packages(tmp_path):
    """The starting package, and the same package with the answer rule in its reference."""
    plain, ruled = tmp_path / "plain", tmp_path / "ruled"
    write_package(plain)
    write_package(ruled)
    with open(ruled / FORMAT_FILE, "a", encoding="utf-8") as fh:
        fh.write(GOOD_RULE + "\n")
    return plain, ruled


def test_a_package_folder_is_loaded_and_its_reference_reaches_the_target(tmp_path,
                                                                        scripted_server):
    server = scripted_server(extra=["--package"])
    plain, ruled = packages(tmp_path)
    tasks = make_tasks(6)
    good = evaluate(str(ruled), tasks, target=target(server), scorer="exact")
    assert (good["score"], good["n"], good["infra_failures"]) == (1.0, 6, 0)
    systems = [m["content"] for r in server.requests() for m in r["messages"]
               if m["role"] == "system"]
    assert systems and all(f'<skill_file path="{FORMAT_FILE}">' in s for s in systems)
    assert evaluate(str(plain), tasks, target=target(server), scorer="exact")["score"] == 0.0
    verdict = compare(str(plain), ruled, make_tasks(12), target=target(server), scorer="exact")
    assert verdict.winner == "B" and (verdict.mean_a, verdict.mean_b) == (0.0, 1.0)


def test_an_md_file_is_loaded_and_text_that_names_nothing_stays_text(tmp_path,
                                                                   scripted_server):
    server = scripted_server()
    ruled = tmp_path / "SKILL.md"
    ruled.write_text(SKILL + GOOD_RULE + "\n")
    tasks = make_tasks(6)
    assert evaluate(str(ruled), tasks, target=target(server), scorer="exact")["score"] == 1.0
    systems = [m["content"] for r in server.requests() for m in r["messages"]
               if m["role"] == "system"]
    assert systems and all("# Adding\nAdd the two numbers." in s and str(ruled) not in s
                           for s in systems)  # the file's text went out, not its path
    missing = str(tmp_path / "missing" / "SKILL.md")  # no such file: it is the skill's text
    result = evaluate(missing, tasks, target=target(server), scorer="exact")
    assert (result["score"], result["n"], result["infra_failures"]) == (0.0, 6, 0)
    assert evaluate(GOOD_RULE, tasks, target=target(server), scorer="exact")["score"] == 1.0
