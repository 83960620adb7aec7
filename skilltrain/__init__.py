"""skilltrain: train an agent's skill document with a frozen model.

The public API: Skill, Edit, Task, Score, TrainConfig, Trainer, train(), evaluate(), the
evidence a user ships on (compare(), evaluate_targets(), train_seeds()), and the errors a caller
may want to tell apart: InfrastructureFailure (NothingScored, EndpointDown).
"""

from skilltrain.api import evaluate, train
from skilltrain.compare import Comparison, compare
from skilltrain.config import TrainConfig, load_config
from skilltrain.data import Task, load_tasks, split_tasks
from skilltrain.evaluation import NothingScored
from skilltrain.models.base import InfrastructureFailure
from skilltrain.models.breaker import EndpointDown
from skilltrain.records import Rollout, Score
from skilltrain.seeds import train_seeds
from skilltrain.skill import Edit, Skill
from skilltrain.trainer import Trainer
from skilltrain.transfer import evaluate_targets

__version__ = "0.1.0"

__all__ = ["Comparison", "Edit", "EndpointDown", "InfrastructureFailure", "NothingScored",
           "Rollout", "Score", "Skill", "Task", "TrainConfig", "Trainer", "compare", "evaluate",
           "evaluate_targets", "load_config", "load_tasks", "split_tasks", "train",
           "train_seeds", "__version__"]
