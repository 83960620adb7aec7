"""skilltrain: train an agent's skill document with a frozen model.

The public API: Skill, Edit, Task, Score, TrainConfig, Trainer, train(), evaluate().
"""

from skilltrain.api import evaluate, train
from skilltrain.config import TrainConfig, load_config
from skilltrain.data import Task, load_tasks, split_tasks
from skilltrain.records import Rollout, Score
from skilltrain.skill import Edit, Skill
from skilltrain.trainer import Trainer

__version__ = "0.1.0"

__all__ = ["Edit", "Rollout", "Score", "Skill", "Task", "TrainConfig", "Trainer", "evaluate",
           "load_config", "load_tasks", "split_tasks", "train", "__version__"]
