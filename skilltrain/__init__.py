"""skilltrain: train an agent's skill document with a frozen model.

The public API: Skill, Edit, Task, Score, TrainConfig, Trainer, train(), evaluate(), and the
errors a caller may want to tell apart: InfrastructureFailure (NothingScored, EndpointDown).
"""

from skilltrain.api import evaluate, train
from skilltrain.config import TrainConfig, load_config
from skilltrain.data import Task, load_tasks, split_tasks
from skilltrain.evaluation import NothingScored
from skilltrain.models.base import InfrastructureFailure
from skilltrain.models.breaker import EndpointDown
from skilltrain.records import Rollout, Score
from skilltrain.skill import Edit, Skill
from skilltrain.trainer import Trainer

__version__ = "0.1.0"

__all__ = ["Edit", "EndpointDown", "InfrastructureFailure", "NothingScored", "Rollout", "Score",
           "Skill", "Task", "TrainConfig", "Trainer", "evaluate", "load_config", "load_tasks",
           "split_tasks", "train", "__version__"]
