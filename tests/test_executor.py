"""The executor seam (executor.py) and the Ray-free worker side (remote_rollout.py,
ray_worker.worker_target), in process: a worker's client and the driver's cache and meter wired
through an in-process link, compared with the plain local path."""

from __future__ import annotations

import asyncio
import pickle
import sys

import pytest
from pydantic import SecretStr
from scripted import GOOD_RULE, Script, make_tasks

from skilltrain.config import ConfigError, ModelConfig, merge_overrides, parse_config
from skilltrain.config_sections import ExecutorConfig
from skilltrain.data import tasks_from_objects
from skilltrain.evaluation import Evaluator
from skilltrain.executor import WORKER_LOST, LocalExecutor, lost_rollout
from skilltrain.harness.chat import ChatHarness
from skilltrain.models.base import Completion, ModelError
from skilltrain.models.breaker import EndpointDown
from skilltrain.models.cache import ResponseCache
from skilltrain.models.client import ReplayMiss, RoleClient
from skilltrain.models.fake import FakeModel
from skilltrain.models.meter import Meter
from skilltrain.records import Rollout
from skilltrain.remote_rollout import (
    KeyScrubbed,
    Secret,
    WorkerCache,
    WorkerClient,
    WorkerError,
    WorkerMeter,
    add_counts,
    apply_event,
    pack_error,
    raise_packed,
    run_one,
)
from skilltrain.scoring import make_scorer
from skilltrain.skill import Skill

TASKS = tasks_from_objects(make_tasks(6))
GOOD = Skill(f"# Adding\n{GOOD_RULE}\n")


class MemoryScores:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, int], Rollout] = {}

    def get(self, skill_hash: str, task_id: str, sample: int) -> Rollout | None:
        return self.rows.get((skill_hash, task_id, sample))

    def put(self, rollout: Rollout) -> None:
        if rollout.ok:
            self.rows[(rollout.skill_hash, rollout.task_id, rollout.sample)] = rollout


class NoHarness:
    name = "none"

    async def run(self, *args, **kwargs):
        raise AssertionError("the evaluator ran the harness itself instead of its executor")


class Answers:
    """An executor that answers every task with its reference, or loses one task."""

    name = "answers"

    def __init__(self, lose: str | None = None):
        self.lose, self.calls = lose, []

    async def run(self, skill, task, sample=0):
        self.calls.append(task.id)
        if task.id == self.lose:
            return lost_rollout(skill, task, sample, 3, "ActorDiedError: the actor died")
        return Rollout(task_id=task.id, skill_hash=skill.hash, sample=sample, answer=task.answer)

    async def aclose(self):
        return None


def target_client(meter: Meter, cache=None) -> RoleClient:
    return RoleClient(FakeModel(Script().respond, name="scripted-target"), "target", meter,
                      cache=cache)


def test_the_evaluator_runs_new_rollouts_through_its_executor_and_scores_them_itself():
    executor = Answers()
    evaluator = Evaluator(NoHarness(), target_client(Meter()), make_scorer("exact"),
                          MemoryScores(), TASKS, executor=executor)
    first = asyncio.run(evaluator.mean(GOOD, TASKS))
    assert first["score"] == 1.0 and first["n"] == len(TASKS)
    assert sorted(executor.calls) == sorted(t.id for t in TASKS)
    again = asyncio.run(evaluator.mean(GOOD, TASKS))  # the score cache: nothing runs twice
    assert again == first and len(executor.calls) == len(TASKS)


def test_a_lost_task_is_an_infrastructure_failure_never_a_wrong_answer():
    lost = TASKS[2].id
    evaluator = Evaluator(NoHarness(), target_client(Meter()), make_scorer("exact"),
                          MemoryScores(), TASKS, executor=Answers(lose=lost))
    result = asyncio.run(evaluator.mean(GOOD, TASKS))
    assert result["score"] == 1.0 and result["n"] == len(TASKS) - 1
    assert result["infra_failures"] == 1 and evaluator.infra_failures == 1
    outcomes = asyncio.run(evaluator(GOOD, [t.id for t in TASKS]))
    assert outcomes[lost] is None and all(v == 1.0 for k, v in outcomes.items() if k != lost)
    assert lost_rollout(GOOD, TASKS[0], 0, 3, "x").error_kind == WORKER_LOST


def test_the_local_executor_is_the_default_and_hands_the_harness_the_evaluators_client():
    seen = []

    class Spy(ChatHarness):
        async def run(self, skill, task, client, sample=0):
            seen.append(client)
            return await super().run(skill, task, client, sample)

    client = target_client(Meter())
    evaluator = Evaluator(Spy(), client, make_scorer("exact"), MemoryScores(), TASKS)
    assert isinstance(evaluator.executor, LocalExecutor)
    assert asyncio.run(evaluator.mean(GOOD, TASKS))["score"] == 1.0
    assert len(seen) == len(TASKS) and all(c is client for c in seen)


class InProcessLink:
    """A worker's link wired straight to a driver's cache and meter."""

    def __init__(self, cache, meter):
        self.cache, self.meter, self.posted = cache, meter, 0

    async def lookup(self, key):
        await asyncio.sleep(0)
        return self.cache.get(key)

    def post(self, event):
        self.posted += 1
        apply_event(pickle.loads(pickle.dumps(event)), self.cache, self.meter)  # as sent


def worker_run(cache, meter, model, *, replay=False):
    link = InProcessLink(cache, meter)
    client = WorkerClient(model, "target", WorkerMeter(link), cache=WorkerCache(link),
                          replay=replay)
    result = asyncio.run(run_one(ChatHarness(), client, GOOD, TASKS[0], 0))
    add_counts(meter, result["counts"])
    return result, link


def test_a_worker_writes_the_drivers_cache_and_meter_as_a_local_run_would(tmp_path):
    local_meter, local_cache = Meter(), ResponseCache(tmp_path / "local.sqlite")
    local = asyncio.run(ChatHarness().run(GOOD, TASKS[0], target_client(local_meter,
                                                                        local_cache)))
    meter, cache = Meter(), ResponseCache(tmp_path / "driver.sqlite")
    model = FakeModel(Script().respond, name="scripted-target")
    result, link = worker_run(cache, meter, model)
    rollout = result["rollout"]
    assert result["error"] is None and rollout.answer == local.answer == TASKS[0].answer
    assert link.posted == 2  # the reply for the cache, the call for the meter
    assert len(cache) == len(local_cache) == 1
    assert meter.summary()["stages"] == local_meter.summary()["stages"]
    assert meter.billed == local_meter.billed and meter.cache_hits == 0
    # the same request again: served from the driver's cache, the model is not called
    again, _ = worker_run(cache, meter, model)
    assert again["rollout"].answer == rollout.answer and len(model.requests) == 1
    assert meter.cache_hits == 1 and meter.billed == local_meter.billed


def test_replay_on_a_worker_misses_like_the_driver_and_says_so(tmp_path):
    meter, cache = Meter(), ResponseCache(tmp_path / "driver.sqlite")
    model = FakeModel(Script().respond, name="scripted-target")
    result, _ = worker_run(cache, meter, model, replay=True)
    assert result["rollout"] is None and model.requests == []
    with pytest.raises(ReplayMiss, match="replay: no cached reply for target/rollout"):
        raise_packed(pickle.loads(pickle.dumps(result["error"])))


def test_errors_cross_the_process_boundary_as_what_they_were():
    down = EndpointDown("target", "http://127.0.0.1:9/v1", "connection refused", 5,
                        answered=True, outage_s=130.0)
    down.note = "resume hint"
    with pytest.raises(EndpointDown) as got:
        raise_packed(pickle.loads(pickle.dumps(pack_error(down))))
    assert (got.value.answered, got.value.attempts, got.value.kind) == (True, 5, "fatal")
    assert str(got.value) == str(down)
    with pytest.raises(ModelError) as err:
        raise_packed(pack_error(ModelError("rate_limit", "slow down", retry_after=3.0)))
    assert (err.value.kind, err.value.message, err.value.retry_after) == ("rate_limit",
                                                                          "slow down", 3.0)
    try:
        {}["missing"]
    except KeyError as exc:
        packed = pack_error(exc)
    with pytest.raises(WorkerError, match="KeyError: 'missing'") as bug:
        raise_packed(packed)
    assert "test_executor.py" in str(bug.value)  # the worker's traceback comes along


def test_a_workers_model_errors_carry_no_secret():
    key = "sk-worker-secret-0123456789"

    def echo(request):
        return ModelError("http_error", f"HTTP 400: bad key {key}")

    model = KeyScrubbed(FakeModel(echo, name="t"), [key, ""])
    with pytest.raises(ModelError) as err:
        asyncio.run(model.complete({"messages": []}))
    assert key not in err.value.message and key not in str(err.value.args)
    assert model.name == "t" and model.requests  # the wrapped model, attributes passed on
    secret = Secret({"OPENAI_API_KEY": key})
    assert key not in repr(secret) and key not in str(secret)
    assert pickle.loads(pickle.dumps(secret)).value == {"OPENAI_API_KEY": key}


def test_a_worker_opens_the_configured_target_with_only_its_own_secrets(monkeypatch):
    from skilltrain.ray_worker import MODEL_ENV, worker_target

    for name in MODEL_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MY_TARGET_KEY", "sk-target-1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("UNRELATED_TOKEN", "not-for-workers")
    cfg = ModelConfig(model="openai:gpt-4o-mini", api_key_env="MY_TARGET_KEY", concurrency=8)
    client = target_client(Meter())
    (kind, sent), secrets = worker_target(cfg, None, client, workers=2, slots=32)
    assert kind == "config" and sent.model == cfg.model and sent.concurrency == 32
    assert secrets.value == {"MY_TARGET_KEY": "sk-target-1",
                             "OPENAI_BASE_URL": "http://127.0.0.1:1/v1"}
    given = FakeModel(Script().respond)
    assert worker_target(cfg, given, client, workers=2, slots=4)[0] == ("object", given)
    local = RoleClient(FakeModel(Script().respond, name="qwen-0.5b"), "target", Meter())
    local.model.base_url = "http://127.0.0.1:5555/v1"
    (_, rewritten), _ = worker_target(ModelConfig(model="local:0.5b"), None, local,
                                      workers=1, slots=8)
    assert (rewritten.model, rewritten.base_url, rewritten.concurrency) == (
        "qwen-0.5b", "http://127.0.0.1:5555/v1", 2)
    assert rewritten.api_key == SecretStr("local")
    with pytest.raises(ConfigError, match="embedded local server"):
        worker_target(ModelConfig(model="cmd:claude@local:0.5b"), None, client, workers=1,
                      slots=1)
    # per-minute limits are the endpoint's: three workers get a third each
    limited = ModelConfig(model="openai:gpt-4o-mini", rpm=100, tpm=9000)
    (_, shared), _ = worker_target(limited, None, client, workers=3, slots=8)
    assert (shared.rpm, shared.tpm) == (33, 3000)


def test_without_ray_installed_the_executor_says_which_extra(monkeypatch):
    from skilltrain.ray_cluster import import_ray, is_loopback

    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"pip install 'skilltrain\[ray\]'"):
        import_ray(loopback=False, token=False)
    assert is_loopback("127.0.0.1:6379") and is_loopback("ray://localhost:10001")
    assert is_loopback("[::1]:6379") and not is_loopback("10.0.0.5:6379")


def test_the_executor_section_and_its_flags():
    assert parse_config({"executor": "ray"}).executor == ExecutorConfig(kind="ray")
    with pytest.raises(ConfigError, match="executor.kind"):
        parse_config({"executor": "spark"})
    with pytest.raises(ConfigError, match="executor.retries"):
        parse_config({"executor": {"kind": "ray", "retries": -1}})
    cfg = merge_overrides(parse_config({}), {"executor.kind": "ray",
                                             "executor.address": "127.0.0.1:6379"}, "flags")
    assert (cfg.executor.kind, cfg.executor.address) == ("ray", "127.0.0.1:6379")
    from skilltrain.cli import _flag
    from skilltrain.run_setup import NEUTRAL

    assert _flag("executor.kind") == "--executor"
    assert _flag("executor.address") == "--ray-address"
    assert "executor" in NEUTRAL  # where rollouts ran does not change results: resumable


def test_completions_and_tasks_survive_the_trip_to_a_worker():
    completion = Completion(text="7", finish_reason="stop")
    assert pickle.loads(pickle.dumps(completion)) == completion
    assert pickle.loads(pickle.dumps(TASKS[0])) == TASKS[0]
    assert pickle.loads(pickle.dumps(GOOD)).hash == GOOD.hash
