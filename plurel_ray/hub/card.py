"""The model card (README.md) pushed with a checkpoint: front matter, recipe, data summary
and metrics, readable at a glance (seed lists as ranges, nested metrics flattened)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from plurel_ray.util.run_files import CONTEXT_RULES_KEY, TEXT_ENCODER_KEY

LIBRARY_NAME = "plurel-ray"
CARD_TAGS = ("plurel-ray", "relational-transformer", "relbench", "synthetic-data")


def model_card(
    repo_id: str,
    step: int | None,
    recipe: Mapping[str, Any] | None,
    data_summary: Mapping[str, Any] | None,
    metrics: Mapping[str, Any] | None,
    files: list[str],
    path_in_repo: str = "",
    *,
    inputs: Mapping[str, Any] | None = None,
) -> str:
    """The README.md pushed with a checkpoint: YAML front matter, the inputs it expects,
    recipe, data, metrics.

    Args:
        repo_id: the model repo.
        step: the checkpoint's training step, if known.
        recipe: the training recipe.
        data_summary: the pretraining data (databases, seeds, config hashes).
        metrics: evaluation metrics by name.
        files: the files pushed.
        path_in_repo: the checkpoint's folder in the repo ("" for the root).
        inputs: its config.json's context_rules and text_encoder ({"name", "dim"}).
    """
    front = yaml.safe_dump({"library_name": LIBRARY_NAME, "tags": list(CARD_TAGS)}, sort_keys=False)
    folder = f"ckpt/{path_in_repo}" if path_in_repo else "ckpt"
    lines = [
        f"---\n{front}---",
        "",
        f"# {repo_id}",
        "",
        "A Relational Transformer checkpoint"
        + (f" (step {step})" if step is not None else "")
        + " pretrained with plurel-ray on synthetic relational databases from the PluRel "
        "prior. Files: " + ", ".join(f"`{name}`" for name in files) + ".",
        "",
        "```bash",
        f"plurel-ray hub download {repo_id} --out ckpt",
        "```",
        "",
        "```python",
        "from plurel_ray.model.checkpoint import load_checkpoint",
        f'model = load_checkpoint("{folder}").model',
        "```",
        "",
        "## Inputs",
        "",
    ]
    lines += _inputs(inputs or {})
    lines += ["", "## Training recipe", ""]
    if recipe:
        lines += ["```yaml", yaml.safe_dump(dict(recipe), sort_keys=False).rstrip(), "```"]
    else:
        lines.append("Not recorded.")
    lines += ["", "## Data summary", ""]
    lines += (
        _table(("field", "value"), _flatten(data_summary)) if data_summary else ["Not recorded."]
    )
    lines += ["", "## Evaluation metrics", ""]
    lines += _table(("metric", "value"), _flatten(metrics)) if metrics else ["Not recorded."]
    return "\n".join(lines) + "\n"


def _inputs(inputs: Mapping[str, Any]) -> list[str]:
    """What the checkpoint must be fed: the context rules of its stores and the encoder
    of their text (docs/contexts.md, docs/model.md)."""
    rules, encoder = inputs.get(CONTEXT_RULES_KEY), inputs.get(TEXT_ENCODER_KEY)
    if rules is None and encoder is None:
        return ["Not recorded."]
    lines = []
    if rules is not None:
        lines.append(f"- Context rules: `{rules}` (build evaluation stores with "
                     f"`plurel-ray preprocess --context-rules {rules}`)")  # fmt: skip
    if isinstance(encoder, Mapping):
        name = encoder.get("name")
        lines.append(f"- Text encoder: `{name}`, {encoder.get('dim')}-d (embed stores with "
                     f"`plurel-ray embed STORE --text-model {name}`)")  # fmt: skip
    return lines


def _table(header: tuple[str, str], rows: dict[str, Any]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    return lines + [f"| {_cell(k)} | {_cell(_format(v))} |" for k, v in rows.items()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, int) for v in value):
        return int_ranges(value)
    return value if isinstance(value, str) else json.dumps(value)


def int_ranges(values: list[int] | tuple[int, ...]) -> str:
    """`0-9, 12, 20-29`: a hundred seeds stay readable in a card.

    Args:
        values: integers, in any order.
    """
    ordered = sorted(set(values))
    runs: list[list[int]] = []
    for v in ordered:
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}/"))
        else:
            flat[name] = value
    return flat
