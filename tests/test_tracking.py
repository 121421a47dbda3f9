"""TensorBoard and MLflow receive what the trainer logs to metrics.jsonl, plus the final report."""

from __future__ import annotations

import json
import socket
import time

import pytest

from crossfuse.errors import ConfigError

COMMON = ["train.batch_size=64", "train.lr=1e-3", "train.log_every=2"]


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def event_scalars(folder):
    """{tag: [(step, value), ...]} of the TensorBoard event files in ``folder`` (purged steps left out)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """A file:// MLflow store (mlflow refuses file stores unless MLFLOW_ALLOW_FILE_STORE is set)."""
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    yield (tmp_path_factory.mktemp("mlruns") / "store").as_uri()
    patch.undo()


@pytest.fixture(scope="module")
def tracked(tmp_path_factory, mlflow_store):
    """One tiny finance run tracked by TensorBoard (installed: on by default) and MLflow."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("tracked") / "fin-tracked",
                     overrides=[*COMMON, f"train.mlflow_uri={mlflow_store}", "train.mlflow_experiment=crossfuse-tests"])


class FailAt:
    """A callback that crashes the run after optimizer step ``step`` (after that step was logged)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, state):
        if state.step == self.step:
            raise RuntimeError("simulated crash")

    def on_epoch_end(self, trainer, state, metrics):
        pass


@pytest.fixture(scope="module")
def resumed(tmp_path_factory, mlflow_store):
    """A tracked run that crashed in its second epoch after logging steps past its last checkpoint, then resumed."""
    import crossfuse
    from crossfuse.testing import smoke_fit

    output = tmp_path_factory.mktemp("resumed") / "run"
    with pytest.raises(RuntimeError, match="simulated crash"):
        smoke_fit("finance-sentiment", output, epochs=2, overrides=[*COMMON, f"train.mlflow_uri={mlflow_store}"],
                  callbacks=[FailAt(22)])  # 16 steps an epoch
    before = records(output)
    result = crossfuse.run("finance-sentiment", output=str(output), resume=True, progress=False)
    return result, before


def mlflow_run(store, run_dir):
    from mlflow.tracking import MlflowClient

    run_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    return MlflowClient(tracking_uri=store), run_id


def test_tensorboard_holds_every_logged_record_at_its_step(tracked):
    logged = records(tracked.run_dir)
    scalars = event_scalars(tracked.run_dir / "tensorboard")
    train = [r for r in logged if r["split"] == "train"]
    assert [step for step, _ in scalars["train/loss"]] == [r["step"] for r in train]
    assert [v for _, v in scalars["train/lr"]] == pytest.approx([r["lr"] for r in train])
    validation = [r for r in logged if r["split"] == "validation"]
    assert [v for _, v in scalars["validation/macro_f1"]] == pytest.approx([r["macro_f1"] for r in validation])


def test_tensorboard_gets_the_final_report_scalars(tracked):
    scalars = event_scalars(tracked.run_dir / "tensorboard")
    ((step, value),) = scalars["final/test/macro_f1"]
    assert step == tracked.report["steps"]
    assert value == pytest.approx(tracked.report["splits"]["test"]["macro_f1"])
    assert "final/baseline/test/accuracy" in scalars


def test_mlflow_run_is_named_after_the_run_directory_in_the_chosen_experiment(tracked, mlflow_store):
    client, run_id = mlflow_run(mlflow_store, tracked.run_dir)
    run = client.get_run(run_id)
    assert run.info.run_name == "fin-tracked" and run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "crossfuse-tests"


def test_mlflow_params_are_the_flattened_resolved_config(tracked, mlflow_store):
    client, run_id = mlflow_run(mlflow_store, tracked.run_dir)
    params = client.get_run(run_id).data.params
    assert params["train.lr"] == "0.001" and params["backbone.name"] == "tiny-bert"
    assert params["data.labels"] == '["negative", "neutral", "positive"]'
    assert params["task"] == "finance-sentiment"


def test_mlflow_metrics_carry_their_steps(tracked, mlflow_store):
    client, run_id = mlflow_run(mlflow_store, tracked.run_dir)
    train = [r for r in records(tracked.run_dir) if r["split"] == "train"]
    history = client.get_metric_history(run_id, "train/loss")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == \
        [(r["step"], pytest.approx(r["loss"])) for r in train]
    final = client.get_metric_history(run_id, "final/test/macro_f1")
    assert [(m.step, m.value) for m in final] == [(tracked.report["steps"],
                                                    pytest.approx(tracked.report["splits"]["test"]["macro_f1"]))]


def test_mlflow_artifacts_are_the_report_files_and_pictures(tracked, mlflow_store):
    client, run_id = mlflow_run(mlflow_store, tracked.run_dir)
    names = {item.path for item in client.list_artifacts(run_id)}
    assert names == {"report.json", "report.html", *tracked.report["pictures"]}


def test_a_resumed_run_logs_no_step_twice(resumed, mlflow_store):
    result, before = resumed
    crashed_steps = [r["step"] for r in before if r["split"] == "train"]
    assert max(crashed_steps) == 22  # the crash came after step 22 was logged, past the epoch-end checkpoint
    steps = [step for step, _ in event_scalars(result.run_dir / "tensorboard")["train/loss"]]
    assert steps == sorted(set(steps)) == [r["step"] for r in records(result.run_dir) if r["split"] == "train"]
    client, run_id = mlflow_run(mlflow_store, result.run_dir)
    history = [m.step for m in client.get_metric_history(run_id, "train/loss")]
    assert sorted(history) == sorted(set(history)) == steps
    assert client.get_run(run_id).info.status == "FINISHED"


def test_tensorboard_false_writes_no_events(tmp_path):
    from crossfuse.api import resolve_config
    from crossfuse.runs import RunDir
    from crossfuse.tracking import start_tracking

    config = resolve_config("finance-sentiment", overrides=["train.tensorboard=false"])
    run = RunDir.create(tmp_path / "run")
    start_tracking(config).attach(run)
    run.log({"step": 1, "epoch": 0, "split": "train", "loss": 0.5, "lr": 1e-3})
    assert run.sinks == [] and not (run.path / "tensorboard").exists()


def test_tensorboard_true_without_the_package_fails_before_anything_is_written(tmp_path, monkeypatch):
    import crossfuse
    from crossfuse import tracking

    monkeypatch.setattr(tracking, "_installed", lambda module: module != "tensorboard")
    with pytest.raises(ConfigError, match=r"pip install 'crossfuse\[tracking\]'"):
        crossfuse.run("finance-sentiment", output=str(tmp_path / "run"), backbone="tiny-bert",
                      overrides=["train.tensorboard=true"])
    assert not (tmp_path / "run").exists()


def test_tensorboard_is_left_out_quietly_when_not_installed_and_not_asked_for(monkeypatch):
    from types import SimpleNamespace

    from crossfuse import tracking

    monkeypatch.setattr(tracking, "_installed", lambda module: False)
    assert tracking.tensorboard_enabled(SimpleNamespace(tensorboard=None)) is False


def test_mlflow_uri_without_the_package_names_the_extra(monkeypatch):
    from crossfuse import tracking

    monkeypatch.setattr(tracking, "_installed", lambda module: module != "mlflow")
    with pytest.raises(ConfigError, match=r"train.mlflow_uri.*pip install 'crossfuse\[tracking\]'"):
        tracking.check_mlflow("http://127.0.0.1:5000")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_tracking_server_fails_fast_before_anything_is_written(tmp_path):
    import crossfuse

    uri = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"cannot reach the MLflow tracking server at http://127\.0\.0\.1"):
        crossfuse.run("finance-sentiment", output=str(tmp_path / "run"), backbone="tiny-bert",
                      overrides=[f"train.mlflow_uri={uri}"])
    assert time.monotonic() - started < 10
    assert not (tmp_path / "run").exists()
