"""The screening model of bench/gate_sim.py: accounting and common random numbers."""

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "bench" / "gate_sim.py"
_spec = importlib.util.spec_from_file_location("gate_sim", _PATH)
gate_sim = importlib.util.module_from_spec(_spec)
sys.modules["gate_sim"] = gate_sim
_spec.loader.exec_module(gate_sim)

REF = gate_sim.SCENARIOS["reference"]


def run(rule, seed, screen=gate_sim.NO_SCREEN, **options):
    return asyncio.run(gate_sim.simulate_run(rule, options, REF, 50, seed, screen))


def test_no_screening_gates_every_proposal_and_spends_no_screening_calls():
    r = run("strict", 3)
    assert r.gated == REF.steps == sum(r.proposed.values())
    assert r.screen_calls == 0
    assert r.calls == 50 * (REF.steps + 1)  # strict: the whole split per step, plus the start


@pytest.mark.parametrize("k,batch", [(1, 20), (3, 5)])
def test_screening_counts_candidate_batches_only(k, batch):
    screen = gate_sim.Screening(k, batch, 60)
    r = run("strict", 11, screen)
    assert sum(r.proposed.values()) == k * REF.steps
    assert r.screen_calls == k * batch * REF.steps  # the incumbent's batch rollouts are free
    assert 0 <= r.gated <= REF.steps
    assert r.calls == 50 * (r.gated + 1)
    assert sum(r.accepted.values()) <= r.gated


def test_first_proposal_is_the_unscreened_one():
    """K=1 screening sees exactly the unscreened run's proposals (common random numbers)."""
    for seed in range(5):
        plain = run("paired", seed)
        screened = run("paired", seed, gate_sim.Screening(1, 20, 60))
        assert plain.proposed == screened.proposed


def test_screening_is_deterministic_and_nested_in_k():
    a = run("paired", 7, gate_sim.Screening(3, 10, 60))
    b = run("paired", 7, gate_sim.Screening(3, 10, 60))
    assert a == b
    k2 = run("paired", 7, gate_sim.Screening(2, 10, 60))
    assert sum(k2.proposed.values()) == 2 * REF.steps
    # K=3 draws K=2's proposals plus one more per step
    assert all(k2.proposed[kind] <= a.proposed[kind] for kind in gate_sim.KINDS)


def test_screening_rejects_bad_sizes():
    with pytest.raises(ValueError):
        gate_sim.Screening(2, 61, 60)
    with pytest.raises(ValueError):
        gate_sim.Screening(-1)


def test_racing_and_selection_only_save_screening_calls():
    full = run("paired", 5, gate_sim.Screening(2, 20, 60))
    raced = run("paired", 5, gate_sim.Screening(2, 20, 60, race=True))
    assert 2 * 10 * REF.steps <= raced.screen_calls < full.screen_calls
    kept = run("paired", 5, gate_sim.Screening(2, 40, 60, keep=(6, 3)))
    assert kept.screen_calls <= 2 * 9 * REF.steps
    for r in (raced, kept):
        assert all(r.passed[k] <= r.proposed[k] for k in gate_sim.KINDS)
        assert r.gated <= sum(r.passed.values())
