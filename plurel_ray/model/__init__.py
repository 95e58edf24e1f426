"""The Relational Transformer: attention masks, model, loss, checkpoints (torch only)."""

from plurel_ray.model.batch import (
    SCALAR_TYPES,
    SEM_TYPES,
    batch_to_tensors,
    check_batch,
    move_batch,
)
from plurel_ray.model.checkpoint import (
    Checkpoint,
    load_checkpoint,
    save_checkpoint,
    unwrap_model,
)
from plurel_ray.model.config import MODEL_PRESETS, ModelConfig, model_preset
from plurel_ray.model.loss import masked_loss
from plurel_ray.model.masks import ATTENTION_KINDS, dense_masks, flex_masks
from plurel_ray.model.transformer import RelationalTransformer, init_model

__all__ = [
    "ATTENTION_KINDS",
    "MODEL_PRESETS",
    "SCALAR_TYPES",
    "SEM_TYPES",
    "Checkpoint",
    "ModelConfig",
    "RelationalTransformer",
    "batch_to_tensors",
    "check_batch",
    "dense_masks",
    "flex_masks",
    "init_model",
    "load_checkpoint",
    "masked_loss",
    "model_preset",
    "move_batch",
    "save_checkpoint",
    "unwrap_model",
]
