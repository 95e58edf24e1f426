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
# then one tiny database generated and written: imports made on first use count too.
ACTOR_SCRIPT = """
import json, sys
from plurel_ray.config import Choices, Config, DatabaseParams
from plurel_ray.pipeline import ray_stages
from plurel_ray.pipeline.seed_worker import SeedWorker

config = Config(database_params=DatabaseParams(
    num_tables_choices=Choices("range", [2, 2]),
    num_rows_entity_table_choices=Choices("range", [10, 12]),
    num_rows_activity_table_choices=Choices("range", [20, 24]),
    num_cols_choices=Choices("range", [2, 3]),
))
row = SeedWorker(config, sys.argv[1]).run(0)
heavy = [name for name in json.loads(sys.argv[2]) if name in sys.modules]
print(json.dumps({"status": row["status"], "error": row["error"], "heavy": heavy}))
"""


def test_generating_and_writing_a_database_imports_no_encoder_hub_plot_or_sklearn(tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(ACTOR_SCRIPT), str(tmp_path / "out"),
         json.dumps(NOT_FOR_GENERATION)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["status"] == "generated", result["error"]
    assert result["heavy"] == [], f"the generation path imports {result['heavy']}"
    assert (tmp_path / "out" / "plurel-0" / "db").is_dir()
