"""A generator actor imports the generation stack and nothing of the other paths.

Every Ray worker that becomes a generator actor pays for its imports before its first
database, once per actor and run; scikit-learn alone (pulled in through relbench's task
API) cost ~0.7 s of a ~3 s start-up. The check runs in a fresh interpreter, since this
test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# Needed only by other paths: the store's text encoder (torch, transformers,
# sentence-transformers), the Hub (huggingface_hub), plots (matplotlib), the RelBench
# task API's metrics (scikit-learn) and SQL schema files (sqlglot).
NOT_FOR_GENERATION = (
    "sklearn",
    "sqlglot",
    "torch",
    "transformers",
    "sentence_transformers",
    "huggingface_hub",
    "matplotlib",
)

# What a Ray worker runs to become a generator actor (ray_stages defines the actor class),
# then the per-seed work it does, in both layouts, through the in-process driver that
# runs the same workers: imports made on first use count too. argv[3] "1" also builds
# each database's node store (--preprocess, what pretraining's data preparation runs).
ACTOR_SCRIPT = """
import json, sys
from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.pipeline import ray_stages
from plurel_ray.pipeline.generate import GenerationRequest, run_generation

config = Config(database_params=DatabaseParams(
    num_tables_choices=Choices("range", [2, 2]),
    num_rows_entity_table_choices=Choices("range", [10, 12]),
    num_rows_activity_table_choices=Choices("range", [20, 24]),
    num_cols_choices=Choices("range", [2, 3]),
))
generated = {}
for layout in ("folders", "packed"):
    request = GenerationRequest(seeds=range(2), out=f"{sys.argv[1]}/{layout}", config=config,
                                layout=layout, preprocess=sys.argv[3] == "1")
    generated[layout] = run_generation(request, use_ray=False, progress=False).generated
heavy = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"generated": generated, "heavy": heavy}))
"""


@pytest.mark.parametrize("preprocess", [False, True], ids=["generate", "generate+preprocess"])
def test_generating_and_writing_a_database_imports_no_encoder_hub_plot_or_sklearn(
    tmp_path, preprocess
):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ACTOR_SCRIPT), str(tmp_path / "out"),
         json.dumps(NOT_FOR_GENERATION), str(int(preprocess))],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["generated"] == {"folders": 2, "packed": 2}
    if preprocess:
        assert len(list((tmp_path / "out" / "folders" / "stores").glob("*/meta.json"))) == 2
    assert result["heavy"] == [], f"the generation path imports {result['heavy']}"
