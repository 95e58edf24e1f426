"""Quiet by default: a command prints its own progress and summary, and Ray's own lines
only with --verbose. The end-to-end checks run `plurel-ray` as a subprocess and read
everything it wrote; the markers are the lines a demo printed before Ray was quieted."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from plurel_ray.cli import build_parser
from plurel_ray.pipeline import quiet

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "PLUREL_RAY_NUM_CPUS": "4"}
for _name in ("RAY_ADDRESS", quiet.VERBOSE_ENV, "RAY_BACKEND_LOG_LEVEL"):
    ENV.pop(_name, None)  # an embedded, quiet Ray whatever the calling shell sets
# What a 3-database demo printed before: Ray's start-up and Ray Data's progress lines,
# the core's C++ errors, and what the driver relayed from Ray Train's actors.
RAY_MARKERS = (
    "WARNING", "Warning", "INFO", "(raylet)", "pid=", "core_worker.cc", "logging.cc",
    "Started a local Ray instance", "Dataset dataset_", "Running Dataset",
    "Progress will be logged", "ray.train", "TrainController", "RayTrainWorker",
    "Failed to query Ray Train Controller", "PlacementGroupCleaner",
)  # fmt: skip
# Commands that start Ray, by the parser that must offer --verbose.
RAY_COMMANDS = ["plurel-ray generate", "plurel-ray demo", *(
    f"jobs/{job}" for job in ("generate.py", "pretrain.py", "continue_pretrain.py",
                              "baseline_pretrain.py", "scaling_law.py"))]  # fmt: skip


def _cli(*args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plurel_ray.cli", *args], env=ENV,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _ray_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(m in line for m in RAY_MARKERS)]


def _parser(name: str):
    if name.startswith("jobs/"):
        return runpy.run_path(str(REPO / name), run_name="flags")["build_parser"]()
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    return commands.choices[name.split()[1]]


@pytest.mark.slow
def test_a_demo_prints_its_summary_and_nothing_of_rays(tmp_path):
    done = _cli("demo", "--out", str(tmp_path), "--num-dbs", "2", "--steps", "5", timeout=400)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert done.stderr == ""  # no warning, no relayed worker line, no bar off a terminal
    assert _ray_lines(done.stdout) == []
    (run,) = tmp_path.glob("demo-*")
    for line in ("databases: 2 (2 generated, 0 already complete, 0 failed)",
                 f"run folder:  {run}", f"report:      {run / 'report.md'}", "total:"):  # fmt: skip
        assert line in done.stdout, done.stdout


@pytest.mark.slow
def test_verbose_shows_rays_own_lines(tmp_path, tiny_config_file):
    args = ["generate", "--ray", "--num-dbs", "1", "--config", str(tiny_config_file),
            "--out", str(tmp_path / "out"), "--no-progress"]  # fmt: skip
    done = _cli(*args, "--verbose", timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    for marker in ("Started a local Ray instance", "Dataset dataset_", "core_worker.cc"):
        assert marker in done.stderr, done.stderr[-4000:]


@pytest.mark.slow
def test_the_training_bar_of_a_worker_reaches_the_driver():
    import ray

    @ray.remote(num_cpus=0)
    def train_three_steps(board) -> None:
        bar = quiet.RemoteBar.factory(board)(total=10, initial=4, desc="train", disable=False)
        for _ in range(3):
            bar.update(1)
        bar.set_postfix(loss="0.5000")
        bar.close()  # as train_loop does when it ends

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        with quiet.StepBar("train") as bar:
            ray.get(train_three_steps.remote(bar.board))
            state = ray.get(bar.board.read.remote())
        assert state == {"total": 10, "n": 7, "postfix": "loss=0.5000"}
    finally:
        ray.shutdown()


@pytest.mark.parametrize("command", RAY_COMMANDS)
def test_every_command_that_starts_ray_has_verbose(command):
    actions = _parser(command)._option_string_actions
    assert "--verbose" in actions and actions["--verbose"].default is False


def test_verbose_is_set_for_the_whole_process_as_it_is_parsed(monkeypatch, tmp_path):
    monkeypatch.setenv(quiet.VERBOSE_ENV, "0")  # restored (unset) after the test
    assert not quiet.verbose()
    args = _parser("plurel-ray demo").parse_args(["--out", str(tmp_path)])
    assert args.verbose is False and not quiet.verbose()
    args = _parser("plurel-ray demo").parse_args(["--out", str(tmp_path), "--verbose"])
    assert args.verbose is True and quiet.verbose()


def test_rays_start_up_output_is_held_back_unless_the_start_fails(capfd, monkeypatch):
    monkeypatch.delenv("RAY_BACKEND_LOG_LEVEL", raising=False)
    with quiet.quiet_start(verbose=False):
        os.write(2, b"[I] logging.cc: Set ray log level\n")
        assert os.environ["RAY_BACKEND_LOG_LEVEL"] == "fatal"
    assert "RAY_BACKEND_LOG_LEVEL" not in os.environ
    assert capfd.readouterr().err == ""
    with pytest.raises(ConnectionError), quiet.quiet_start(verbose=False):
        os.write(2, b"the head is not reachable\n")
        raise ConnectionError
    assert capfd.readouterr().err == "the head is not reachable\n"
    with quiet.quiet_start(verbose=True):
        os.write(2, b"shown\n")
        assert "RAY_BACKEND_LOG_LEVEL" not in os.environ
    assert capfd.readouterr().err == "shown\n"


def test_rays_console_handlers_pass_errors_only_unless_verbose():
    import ray.data  # noqa: F401  (sets up the `ray.data` logger)
    from ray._private.log import PlainRayHandler

    handlers = [h for name in ("ray", "ray.data") for h in logging.getLogger(name).handlers]
    consoles = [h for h in handlers if isinstance(h, PlainRayHandler)]
    files = {h: h.level for h in handlers if h not in consoles}
    assert len(consoles) == 2 and files  # ray.data also logs to the session's files
    try:
        quiet.set_console_logging(verbose=False)
        assert {h.level for h in consoles} == {logging.ERROR}
    finally:
        quiet.set_console_logging(verbose=True)
    assert {h.level for h in consoles} == {logging.INFO}
    assert {h: h.level for h in files} == files  # the log files keep every record
