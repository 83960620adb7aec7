"""How the target runs one task with a skill. A harness is anything with an async
`run(skill, task, client, sample) -> Rollout`."""

from skilltrain.harness.chat import ChatHarness

__all__ = ["ChatHarness"]
