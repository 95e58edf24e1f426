"""The file names of a checkpoint folder, in one place.

A checkpoint folder (`step_<N>/`) holds the weights and their config (`model/checkpoint.py`),
the optimizer state to resume from (`train/resume.py`) and the run's per-step metrics so
far (`train/loop.py`, copied along by `pipeline/pretrain.py`), and with evaluation during
training its evaluation rows and best weights so far; the Hub pushes and pulls
the same names. They live here, apart from those writers, so the Hub and the report can
name them without importing torch.
"""

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
RESUME_FILE = "resume.pt"
METRICS_FILE = "metrics.jsonl"
# The evaluations during training (`train/eval_log.py`): one row per (step, split, task)
# and per (step, split) mean, and the weights of the best mean val score so far.
EVAL_FILE = "eval.jsonl"
BEST_DIR = "best"
BEST_FILE = "best.json"
# The config.json entries that say what inputs the model was trained on (`train/expectations.py`),
# shown in the model card too.
CONTEXT_RULES_KEY = "context_rules"
TEXT_ENCODER_KEY = "text_encoder"
