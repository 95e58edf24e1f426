"""Training without Ray: recipes, the loop, resumable checkpoints, evaluation."""

from plurel_ray.train.config import PRECISIONS, RECIPES, Recipe, TrainConfig, recipe
from plurel_ray.train.evaluate import auroc, evaluate, r2_score
from plurel_ray.train.loop import TrainResult, forward_loss, train_loop
from plurel_ray.train.optim import one_cycle
from plurel_ray.train.resume import load_resume_state, resume_state, save_training_checkpoint

__all__ = [
    "PRECISIONS",
    "RECIPES",
    "Recipe",
    "TrainConfig",
    "TrainResult",
    "auroc",
    "evaluate",
    "forward_loss",
    "load_resume_state",
    "one_cycle",
    "r2_score",
    "recipe",
    "resume_state",
    "save_training_checkpoint",
    "train_loop",
]
