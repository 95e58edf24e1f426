"""Hub sync through the real huggingface_hub client against the in-memory test Hub."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
from hub_server import HubServer
from huggingface_hub import CommitOperationDelete, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError

from plurel_ray.cli import main
from plurel_ray.dataset.relbench_io import write_dataset
from plurel_ray.errors import CheckpointError, DatasetError, HubError
from plurel_ray.hub import client as hub_client
from plurel_ray.hub import push as hub_module
from plurel_ray.hub.download import download
from plurel_ray.hub.push import push_checkpoint, push_dataset_folder
from plurel_ray.hub.uploader import HubUploader
from plurel_ray.model import ModelConfig, init_model, load_checkpoint
from plurel_ray.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from plurel_ray.synth.database import generate_database
from plurel_ray.train import TrainConfig, recipe
from plurel_ray.train.loop import METRICS_FILE
from plurel_ray.train.resume import RESUME_FILE, save_training_checkpoint

TOKEN = "hf_test_secret_5f2c9a7e1d"
WRONG_TOKEN = "hf_test_secret_wrong_0b3d"
SMALL = ModelConfig(num_blocks=1, d_model=32, num_heads=4, d_ff=64, d_text=16)
RECIPE = dataclasses.asdict(recipe("tiny", steps=7, lr=0.003))
DATA = {"num_databases": 12, "seeds": [*range(10), 20, 21], "config_hash": "c0ffee1234"}


@pytest.fixture(scope="module")
def hub():
    with HubServer(tokens={TOKEN}) as server:
        yield server
        assert not server.requests_to("unknown"), "the client called a route the server lacks"


@pytest.fixture(autouse=True)
def hermetic_cache(monkeypatch, tmp_path):
    # snapshot_download records refs in the global cache even with local_dir.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    # CI exports HF_HUB_OFFLINE=1 so nothing reaches huggingface.co; the local test Hub
    # must stay reachable (huggingface_hub read the variable at import).
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A real training checkpoint: weights, config, resume state and the metrics log."""
    folder = tmp_path_factory.mktemp("run") / "step_00000007"
    state = {"step": 7, "data_position": 7}
    save_training_checkpoint(folder, init_model(SMALL, 0), SMALL, TrainConfig(steps=7), state)
    (folder / METRICS_FILE).write_text('{"step": 7, "loss": 2.5}\n')
    return folder


def files_of(folder: Path) -> dict[str, bytes]:
    """Relative path -> bytes, without huggingface_hub's `.cache/` metadata."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and ".cache" not in p.relative_to(folder).parts
    }


def test_file_names_match_what_the_training_loop_writes():
    assert (hub_module.WEIGHTS_FILE, hub_module.CONFIG_FILE) == (WEIGHTS_FILE, CONFIG_FILE)
    assert (hub_module.RESUME_FILE, hub_module.METRICS_FILE) == (RESUME_FILE, METRICS_FILE)


def test_push_checkpoint_makes_one_commit_with_a_card_and_without_resume_state(
    hub, checkpoint, tmp_path
):
    before = files_of(checkpoint)
    commits = len(hub.requests_to("commit"))
    oid = push_checkpoint(
        checkpoint, "org/ckpt", recipe=RECIPE, data_summary=DATA,
        metrics={"val": {"loss": 0.123456}, "auroc": 0.9}, endpoint=hub.endpoint, token=TOKEN,
    )  # fmt: skip
    assert len(hub.requests_to("commit")) == commits + 1
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    assert set(api.list_repo_files("org/ckpt")) == {
        ".gitattributes", "README.md", CONFIG_FILE, METRICS_FILE, WEIGHTS_FILE,
    }  # fmt: skip
    assert api.repo_info("org/ckpt").sha == oid
    assert api.repo_info("org/ckpt").private
    assert files_of(checkpoint) == before  # the local folder is only read

    local = download("org/ckpt", local_dir=tmp_path / "dl", endpoint=hub.endpoint, token=TOKEN)
    card = (local / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: plurel-ray\ntags:\n")
    assert "step 7" in card and "name: tiny" in card and "lr: 0.003" in card
    assert "| num_databases | 12 |" in card and "| seeds | 0-9, 20-21 |" in card
    assert "| config_hash | c0ffee1234 |" in card
    assert "| val/loss | 0.1235 |" in card and "| auroc | 0.9 |" in card
    for name in (WEIGHTS_FILE, CONFIG_FILE, METRICS_FILE):
        assert (local / name).read_bytes() == before[name]
    loaded = load_checkpoint(local).model.state_dict()
    original = load_checkpoint(checkpoint).model.state_dict()
    assert all(torch.equal(loaded[k], original[k]) for k in original)


def test_test_hub_lists_trees_and_paths_and_deletes_folders(hub, checkpoint, tmp_path):
    push_checkpoint(checkpoint, "org/nested", path_in_repo="runs/a", endpoint=hub.endpoint,
                    token=TOKEN, include_resume=True)  # fmt: skip
    api = HfApi(endpoint=hub.endpoint, token=TOKEN)
    top = {e.path for e in api.list_repo_tree("org/nested")}
    assert top == {".gitattributes", "runs"}
    nested = {e.path for e in api.list_repo_tree("org/nested", "runs", recursive=True)}
    assert f"runs/a/{RESUME_FILE}" in nested and "runs/a" in nested
    info = api.get_paths_info("org/nested", ["runs/a/README.md", "runs", "absent"])
    assert [(type(i).__name__, i.path) for i in info] == [
        ("RepoFile", "runs/a/README.md"), ("RepoFolder", "runs"),
    ]  # fmt: skip
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("org/nested", "absent.txt", local_dir=tmp_path, endpoint=hub.endpoint,
                        token=TOKEN)  # fmt: skip
    api.create_commit("org/nested", [CommitOperationDelete("runs/")], commit_message="rm")
    assert api.list_repo_files("org/nested") == [".gitattributes"]


def test_download_gives_an_older_revision_or_the_latest(hub, checkpoint, tmp_path):
    first = push_checkpoint(checkpoint, "org/history", metrics={"loss": 1.0},
                            endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    push_checkpoint(checkpoint, "org/history", metrics={"loss": 0.5},
                    endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    old = download("org/history", revision=first, local_dir=tmp_path / "old",
                   endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    new = download("org/history", local_dir=tmp_path / "new", endpoint=hub.endpoint, token=TOKEN)
    assert "| loss | 1 |" in (old / "README.md").read_text()
    assert "| loss | 0.5 |" in (new / "README.md").read_text()
    with pytest.raises(HubError, match="has no revision 'v9'") as err:
        download("org/history", revision="v9", local_dir=tmp_path / "x",
                 endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    assert not err.value.transient


def test_push_to_a_missing_branch_names_the_revision(hub, checkpoint):
    with pytest.raises(HubError, match="has no revision 'no-such-branch'"):
        push_checkpoint(checkpoint, "org/ckpt", revision="no-such-branch",
                        endpoint=hub.endpoint, token=TOKEN)  # fmt: skip


def test_push_checkpoint_needs_weights_and_config(hub, tmp_path):
    (tmp_path / CONFIG_FILE).write_text("{}")
    with pytest.raises(CheckpointError, match=r"model\.safetensors"):
        push_checkpoint(tmp_path, "org/ckpt", endpoint=hub.endpoint, token=TOKEN)


def test_dataset_folder_round_trips_byte_identical_in_relbench_layout(hub, small_config, tmp_path):
    db_folder = write_dataset(generate_database(0, small_config), tmp_path / "data" / "plurel-0",
                              small_config)  # fmt: skip
    (db_folder / "schema.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    commits = len(hub.requests_to("commit"))
    push_dataset_folder(tmp_path / "data", "org/dbs", endpoint=hub.endpoint, token=TOKEN)
    assert len(hub.requests_to("commit")) == commits + 1  # one commit per database
    local = download("org/dbs", repo_type="dataset", local_dir=tmp_path / "dl",
                     endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    assert files_of(local / "plurel-0") == files_of(db_folder)

    # A database pushed again loses the files its folder no longer has.
    (db_folder / "schema.svg").unlink()
    push_dataset_folder(db_folder, "org/dbs", endpoint=hub.endpoint, token=TOKEN)
    files = HfApi(endpoint=hub.endpoint, token=TOKEN).list_repo_files(
        "org/dbs", repo_type="dataset"
    )
    assert "plurel-0/schema.svg" not in files and "plurel-0/manifest.yaml" in files


def test_push_dataset_folder_without_a_database_says_what_to_pass(hub, tmp_path):
    with pytest.raises(DatasetError, match="holds no database"):
        push_dataset_folder(tmp_path, "org/dbs", endpoint=hub.endpoint, token=TOKEN)


def test_uploader_retries_transient_failures_with_backoff(hub, checkpoint, caplog):
    hub.fail_next("commit", times=2, status=503)
    commits = len(hub.requests_to("commit"))
    uploader = HubUploader("org/retry", attempts=3, base_delay=0.01, endpoint=hub.endpoint,
                           token=TOKEN)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="plurel_ray.hub.uploader"):
        uploader.submit(checkpoint, metrics={"loss": 1.0})
        assert uploader.close(timeout=30)
    assert len(hub.requests_to("commit")) == commits + 3
    assert uploader.failures == [] and len(uploader.commits) == 1
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2
    assert (
        HfApi(endpoint=hub.endpoint, token=TOKEN).repo_info("org/retry").sha == uploader.commits[0]
    )


def test_uploader_gives_up_after_its_attempts(hub, checkpoint):
    hub.fail_next("commit", times=2, status=502)
    with HubUploader("org/flaky", attempts=2, base_delay=0, endpoint=hub.endpoint,
                     token=TOKEN) as uploader:  # fmt: skip
        uploader.submit(checkpoint)
    assert [f.attempts for f in uploader.failures] == [2] and uploader.commits == []
    assert "HTTP 502" in uploader.failures[0].error


def test_uploader_records_a_rejected_token_without_retrying_or_touching_the_folder(
    hub, checkpoint, caplog
):
    before = files_of(checkpoint)
    creates = len(hub.requests_to("create"))
    with caplog.at_level(logging.DEBUG):
        uploader = HubUploader("org/denied", base_delay=0.01, endpoint=hub.endpoint,
                               token=WRONG_TOKEN)  # fmt: skip
        uploader.submit(checkpoint)  # returns at once, raises nothing
        assert uploader.close(timeout=30)
    assert len(hub.requests_to("create")) == creates + 1  # HTTP 401 is not retried
    [failure] = uploader.failures
    assert failure.attempts == 1 and "HTTP 401" in failure.error
    assert failure.folder == checkpoint and failure.repo_id == "org/denied"
    assert any("giving up" in r.getMessage() for r in caplog.records)
    assert all(WRONG_TOKEN not in r.getMessage() for r in caplog.records)
    assert WRONG_TOKEN not in failure.error
    assert files_of(checkpoint) == before


def test_library_retry_settings_are_the_ones_we_rely_on():
    from huggingface_hub.utils import _http

    assert hub_client.LIBRARY_RETRY_STATUS == _http._DEFAULT_RETRY_ON_STATUS_CODES
    assert hub_client.LIBRARY_RETRY_ERRORS == _http._DEFAULT_RETRY_ON_EXCEPTIONS


def test_uploader_leaves_what_huggingface_hub_retries_to_it(hub, checkpoint, caplog):
    hub.fail_next("preupload", times=1, status=503)
    preuploads, commits = len(hub.requests_to("preupload")), len(hub.requests_to("commit"))
    uploader = HubUploader("org/backoff", attempts=3, base_delay=0.01, endpoint=hub.endpoint,
                           token=TOKEN)  # fmt: skip
    with caplog.at_level(logging.WARNING):
        uploader.submit(checkpoint)
        assert uploader.close(timeout=30)
    assert uploader.failures == [] and len(uploader.commits) == 1
    assert len(hub.requests_to("preupload")) == preuploads + 2  # huggingface_hub's retry
    assert len(hub.requests_to("commit")) == commits + 1
    assert not [r for r in caplog.records if r.name.startswith("plurel_ray")]


def test_uploader_does_not_retry_again_what_huggingface_hub_gave_up_on(
    hub, checkpoint, monkeypatch
):
    # huggingface_hub sends a preupload 6 times over 23 s: skip its waits.
    monkeypatch.setattr("huggingface_hub.utils._http.time.sleep", lambda seconds: None)
    hub.fail_next("preupload", times=6, status=503)
    preuploads, commits = len(hub.requests_to("preupload")), len(hub.requests_to("commit"))
    with HubUploader("org/outage", attempts=3, base_delay=0.01, endpoint=hub.endpoint,
                     token=TOKEN) as uploader:  # fmt: skip
        uploader.submit(checkpoint)
    [failure] = uploader.failures
    assert failure.attempts == 1 and "HTTP 503" in failure.error
    assert len(hub.requests_to("preupload")) == preuploads + 6
    assert len(hub.requests_to("commit")) == commits


@pytest.mark.parametrize(
    ("route", "status", "says"),
    [("commit", 403, "refused the token"), ("commit", 404, "HTTP 404"),
     ("preupload", 401, "refused the token")],
)  # fmt: skip
def test_uploader_counts_a_permanent_failure_without_retrying(hub, checkpoint, route, status,
                                                              says):  # fmt: skip
    hub.fail_next(route, times=1, status=status, message="no")
    before = len(hub.requests_to(route))
    with HubUploader("org/permanent", attempts=3, base_delay=0.01, endpoint=hub.endpoint,
                     token=TOKEN) as uploader:  # fmt: skip
        uploader.submit(checkpoint)
    [failure] = uploader.failures
    assert failure.attempts == 1 and says in failure.error and uploader.commits == []
    assert len(hub.requests_to(route)) == before + 1


def test_close_that_stops_waiting_cancels_queued_pushes_and_retries(hub, checkpoint):
    hub.fail_next("commit", times=1, status=503)
    uploader = HubUploader("org/slow", attempts=5, base_delay=60, endpoint=hub.endpoint,
                           token=TOKEN)  # fmt: skip
    uploader.submit(checkpoint)
    uploader.submit(checkpoint)
    assert not uploader.close(timeout=0.5)  # the first push waits 60 s for its retry
    assert uploader.close(timeout=10)  # it stops waiting instead
    assert sorted(f.attempts for f in uploader.failures) == [0, 1]
    assert uploader.commits == []


def test_submit_checks_the_push_arguments_at_once(hub, checkpoint):
    with (
        HubUploader("org/x", endpoint=hub.endpoint, token=TOKEN) as uploader,
        pytest.raises(TypeError),
    ):
        uploader.submit(checkpoint, metric={"loss": 1.0})


def test_token_travels_only_in_the_authorization_header(hub, checkpoint, tmp_path, caplog):
    first = len(hub.requests)
    with caplog.at_level(logging.DEBUG):
        # A recipe that holds the token is scrubbed from the card.
        push_checkpoint(checkpoint, "org/secret", recipe={"note": TOKEN}, endpoint=hub.endpoint,
                        token=TOKEN)  # fmt: skip
        local = download("org/secret", local_dir=tmp_path / "dl", endpoint=hub.endpoint,
                         token=TOKEN)  # fmt: skip
        with pytest.raises(HubError) as missing:
            download("org/absent", local_dir=tmp_path / "x", endpoint=hub.endpoint, token=TOKEN)
    assert TOKEN not in (local / "README.md").read_text()
    assert TOKEN not in str(missing.value)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)
    requests = hub.requests[first:]
    assert requests
    for request in requests:
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        others = [v for k, v in request.headers.items() if k != "authorization"]
        assert TOKEN not in request.path and TOKEN.encode() not in request.body
        assert all(TOKEN not in value for value in others)


def test_token_echoed_by_the_server_is_scrubbed_from_errors_and_our_logs(hub, checkpoint, caplog):
    echo = f"bad request from {TOKEN}"
    hub.fail_next("commit", times=1, status=500, message=echo)
    with pytest.raises(HubError) as err:
        push_checkpoint(checkpoint, "org/echo", endpoint=hub.endpoint, token=TOKEN)
    assert err.value.transient and TOKEN not in str(err.value) and "hf_***" in str(err.value)

    hub.fail_next("commit", times=1, status=500, message=echo)
    uploader = HubUploader("org/echo", attempts=1, endpoint=hub.endpoint, token=TOKEN)
    with caplog.at_level(logging.DEBUG, logger="plurel_ray"):
        uploader.submit(checkpoint)
        assert uploader.close(timeout=30)
    [failure] = uploader.failures
    assert "hf_***" in failure.error and TOKEN not in failure.error
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("plurel_ray")]
    assert ours and all(TOKEN not in message for message in ours)


def test_cli_downloads_a_repo_and_reports_a_missing_one_in_one_line(
    hub, checkpoint, tmp_path, monkeypatch, capsys
):
    push_checkpoint(checkpoint, "org/cli", endpoint=hub.endpoint, token=TOKEN)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert main(["hub", "download", "org/cli", "--out", str(tmp_path / "ckpt")]) == 0
    assert str(tmp_path / "ckpt") in capsys.readouterr().out
    assert (tmp_path / "ckpt" / WEIGHTS_FILE).read_bytes() == (
        checkpoint / WEIGHTS_FILE
    ).read_bytes()

    # Into a non-empty folder, where snapshot_download alone would report success.
    args = ["hub", "download", "org/nope", "--repo-type", "dataset", "--out", str(tmp_path)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("plurel-ray: error: dataset repo org/nope")
    assert "does not exist" in err and TOKEN not in err


def test_generation_pushes_each_new_database_as_it_completes(
    hub, small_config, tmp_path, monkeypatch
):
    from plurel_ray.pipeline.generate import GenerationRequest, run_generation

    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    request = GenerationRequest(seeds=[3, 4], out=str(tmp_path / "out"), config=small_config,
                                hub_repo="org/generated")  # fmt: skip
    summary = run_generation(request, use_ray=False, progress=False)
    assert summary.generated == 2 and summary.hub_failures == 0
    files = set(HfApi(endpoint=hub.endpoint, token=TOKEN).list_repo_files(
        "org/generated", repo_type="dataset"))  # fmt: skip
    assert {"plurel-3/manifest.yaml", "plurel-4/plurel.json"} <= files
    back = download("org/generated", repo_type="dataset", local_dir=tmp_path / "back",
                    endpoint=hub.endpoint, token=TOKEN)  # fmt: skip
    assert files_of(back / "plurel-4") == files_of(tmp_path / "out" / "plurel-4")
    # A rerun finds the databases complete and pushes nothing new.
    commits = len(hub.requests_to("commit"))
    assert run_generation(request, use_ray=False, progress=False).skipped == 2
    assert len(hub.requests_to("commit")) == commits
