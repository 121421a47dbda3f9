"""The shared trainer: determinism, exact resume, checkpoints, schedules, early stopping."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from crossfuse.trainer import Callback, lr_lambda

from toy_task import make_trainer


def weights(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


class InterruptAt(Callback):
    """Simulates Ctrl-C right after optimizer step ``step``."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, trainer, state):
        if state.step == self.step:
            raise KeyboardInterrupt


def test_same_seed_gives_identical_weights_and_metrics(tmp_path):
    first, second = make_trainer(tmp_path / "a"), make_trainer(tmp_path / "b")
    first.fit(), second.fit()
    assert_same_weights(weights(first), weights(second))
    assert first.state.history == second.state.history


def test_different_seeds_give_different_weights(tmp_path):
    first, second = make_trainer(tmp_path / "a", seed=0), make_trainer(tmp_path / "b", seed=1)
    first.fit(), second.fit()
    assert any(not torch.equal(a, b) for a, b in zip(weights(first).values(), weights(second).values()))


@pytest.mark.parametrize("interrupt_step", [4, 6, 11])  # mid-epoch, at an epoch boundary, mid-epoch later
def test_resume_after_interrupt_equals_uninterrupted_run(tmp_path, interrupt_step):
    reference = make_trainer(tmp_path / "ref")
    reference.fit()

    interrupted = make_trainer(tmp_path / "run", callbacks=[InterruptAt(interrupt_step)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    assert interrupted.state.step == interrupt_step

    resumed = make_trainer(tmp_path / "run", seed=0)
    resumed.fit(resume=True)
    assert resumed.state.step == reference.state.step
    assert_same_weights(weights(reference), weights(resumed))
    assert [h["accuracy"] for h in resumed.state.history] == [h["accuracy"] for h in reference.state.history]


def test_resume_with_gradient_accumulation_is_exact(tmp_path):
    reference = make_trainer(tmp_path / "ref", grad_accum=2)
    reference.fit()
    interrupted = make_trainer(tmp_path / "run", grad_accum=2, callbacks=[InterruptAt(2)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = make_trainer(tmp_path / "run", grad_accum=2)
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))


def test_resumed_metrics_log_has_no_duplicate_steps(tmp_path):
    interrupted = make_trainer(tmp_path / "run", log_every=1, checkpoint_every=2, callbacks=[InterruptAt(5)])
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    make_trainer(tmp_path / "run", log_every=1, checkpoint_every=2).fit(resume=True)
    steps = [r["step"] for r in interrupted.run.read_log() if r["split"] == "train"]
    assert steps == sorted(set(steps)) == list(range(1, 19))


def test_checkpoints_are_safetensors_and_leave_no_temporary_files(tmp_path):
    trainer = make_trainer(tmp_path / "run")
    trainer.fit()
    files = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert files == ["best.safetensors", "last-state.pt", "last.safetensors"]
    last = load_file(str(tmp_path / "run" / "checkpoints" / "last.safetensors"))
    assert_same_weights(last, {k: v for k, v in weights(trainer).items()})
    state = torch.load(tmp_path / "run" / "checkpoints" / "last-state.pt", weights_only=True)
    assert state["trainer"]["step"] == trainer.state.step


def test_training_learns_the_toy_problem(tmp_path):
    trainer = make_trainer(tmp_path / "run", epochs=12)
    trainer.fit()
    assert trainer.evaluate(trainer.data.test)["accuracy"] > 0.8


def test_early_stopping_stops_when_the_main_metric_stalls(tmp_path):
    trainer = make_trainer(tmp_path / "run", epochs=20, lr=0.0, warmup_ratio=0.0, early_stopping_patience=2)
    trainer.fit()
    # With lr=0 nothing improves after the first evaluation: stop after 1 + patience epochs.
    assert trainer.state.epoch == 3
    assert trainer.state.best_epoch == 0


def test_eval_every_skips_the_epochs_between_and_always_evaluates_the_last(tmp_path):
    every_epoch = make_trainer(tmp_path / "a", epochs=5)
    every_epoch.fit()
    sparse = make_trainer(tmp_path / "b", epochs=5, eval_every=2)
    sparse.fit()
    evaluated = [h["epoch"] for h in sparse.state.history if "accuracy" in h]
    assert evaluated == [1, 3, 4]  # epochs 2 and 4 (every 2nd), then the last (5th)
    assert len(sparse.state.history) == 5  # an epoch without evaluation still leaves its record
    # Skipping evaluations changes nothing in training: the same weights and, where both evaluated, the same metrics.
    assert_same_weights(weights(every_epoch), weights(sparse))
    reference = {h["epoch"]: h["accuracy"] for h in every_epoch.state.history}
    assert all(h["accuracy"] == reference[h["epoch"]] for h in sparse.state.history if "accuracy" in h)
    assert sparse.state.best_epoch in evaluated
    logged = [r["epoch"] for r in sparse.run.read_log() if r["split"] == "validation"]
    assert logged == evaluated


def test_max_steps_caps_training_and_still_evaluates_and_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path / "run", max_steps=5)
    trainer.fit()
    assert trainer.state.step == 5
    assert len(trainer.state.history) == 1 and trainer.state.best_epoch == 0
    assert trainer.run.best_weights().name == "best.safetensors"


def test_gradient_accumulation_matches_a_larger_batch_without_dropout(tmp_path):
    def run(**options):
        trainer = make_trainer(None, epochs=1, lr=0.05, grad_clip=None, **options)
        for module in trainer.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        trainer.fit()
        return weights(trainer)

    big, accumulated = run(batch_size=32), run(batch_size=16, grad_accum=2)
    for key in big:
        assert torch.allclose(big[key], accumulated[key], atol=1e-5), key


def test_warmup_then_linear_decay():
    factor = lr_lambda("linear", warmup=4, total=14)
    assert [round(factor(s), 3) for s in (0, 1, 3)] == [0.25, 0.5, 1.0]
    assert factor(4) == 1.0 and factor(9) == 0.5 and factor(14) == 0.0


def test_cosine_schedule_ends_at_zero_and_constant_stays():
    assert lr_lambda("cosine", 0, 10)(10) == pytest.approx(0.0)
    assert lr_lambda("cosine", 0, 10)(5) == pytest.approx(0.5)
    assert lr_lambda("constant", 2, 10)(9) == 1.0


def test_interrupt_between_accumulated_micro_batches_replays_them_on_resume(tmp_path):
    reference = make_trainer(tmp_path / "ref", grad_accum=2)
    reference.fit()

    interrupted = make_trainer(tmp_path / "run", grad_accum=2)
    original, calls = interrupted.task.training_step, []

    def failing_step(model, batch):
        calls.append(1)
        if len(calls) == 6:  # micro-batch 5 was accumulated but never applied
            raise KeyboardInterrupt
        return original(model, batch)

    interrupted.task.training_step = failing_step
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last-state.pt", weights_only=True)
    assert (saved["trainer"]["step"], saved["trainer"]["batch_in_epoch"]) == (2, 4)

    resumed = make_trainer(tmp_path / "run", grad_accum=2)
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))


def test_bf16_autocast_trains_on_the_cpu(tmp_path):
    trainer = make_trainer(tmp_path / "run", precision="bf16", epochs=1)
    assert trainer.amp_dtype == torch.bfloat16
    trainer.fit()
    assert all(torch.isfinite(v).all() for v in weights(trainer).values())
    assert 0.0 < trainer.state.history[0]["loss"] < 10.0  # validation loss is a real, finite number


def test_auto_precision_is_fp32_on_the_cpu():
    from crossfuse.trainer import autocast_dtype

    assert autocast_dtype("auto", torch.device("cpu")) is None
    assert autocast_dtype("fp16", torch.device("cpu")) == torch.float16


def test_last_smaller_accumulation_group_is_averaged_over_its_own_micro_batches(tmp_path):
    # 96 samples: batches of 64 give steps over 64 and 32 samples; micro-batches of 16 with grad_accum=4
    # give groups of 4 and 2 micro-batches, the same samples. Equal weights only if the group of 2 is
    # averaged over 2, not 4.
    def run(**options):
        trainer = make_trainer(None, epochs=1, lr=0.05, grad_clip=None, warmup_ratio=0.0, **options)
        for module in trainer.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        trainer.fit()
        return weights(trainer)

    big, accumulated = run(batch_size=64), run(batch_size=16, grad_accum=4)
    for key in big:
        assert torch.allclose(big[key], accumulated[key], atol=1e-5), key


def imbalanced(trainer, rare=12):
    """Label the first ``rare`` training samples "rare", the rest "common"."""
    trainer.task.sample_labels = lambda samples: ["rare" if i < rare else "common" for i in range(len(samples))]
    trainer._draw_weights = trainer._sampling_weights()
    return trainer


def test_balanced_sampler_draws_every_class_about_equally(tmp_path):
    trainer = imbalanced(make_trainer(None, sampler="balanced"))
    drawn = [i for epoch in range(5) for i in trainer._epoch_indices(epoch)]
    share = sum(i < 12 for i in drawn) / len(drawn)
    assert 0.4 < share < 0.6  # 12 of 96 samples, drawn half of the time
    assert trainer._epoch_indices(3) == trainer._epoch_indices(3)  # fixed by (seed, epoch): resumable


def test_resume_with_the_balanced_sampler_is_exact(tmp_path):
    reference = imbalanced(make_trainer(tmp_path / "ref", sampler="balanced"))
    reference.fit()
    interrupted = imbalanced(make_trainer(tmp_path / "run", sampler="balanced", callbacks=[InterruptAt(7)]))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = imbalanced(make_trainer(tmp_path / "run", sampler="balanced"))
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))


def test_a_sampler_the_task_cannot_serve_is_refused_by_name():
    from crossfuse.errors import CrossfuseError

    with pytest.raises(CrossfuseError, match="train.sampler=weighted: task 'toy' gives no sample weights"):
        make_trainer(None, sampler="weighted")


def test_an_undefined_main_metric_never_becomes_best_and_is_reported_once(tmp_path, capsys):
    trainer = make_trainer(tmp_path / "run", epochs=4)
    original, calls = trainer.task.compute_metrics, []

    def sometimes_undefined(outputs, samples):
        calls.append(1)
        metrics = original(outputs, samples)
        return {**metrics, "accuracy": float("nan")} if len(calls) in (1, 3) else metrics

    trainer.task.compute_metrics = sometimes_undefined
    trainer.fit()
    assert trainer.state.best_epoch in (1, 3)
    assert capsys.readouterr().err.count("main metric accuracy is nan") == 1
    logged = [r for r in trainer.run.read_log() if r["split"] == "validation"]
    assert logged[0]["accuracy"] is None  # written as null, not NaN, in metrics.jsonl


def test_nested_outputs_are_moved_to_the_cpu_whole():
    from crossfuse.outputs import to_cpu

    nested = {"detections": [{"boxes": torch.ones(2, 4, dtype=torch.float16), "labels": torch.tensor([1, 2])}],
              "scores": (torch.zeros(3, requires_grad=True),)}
    moved = to_cpu(nested)
    assert moved["detections"][0]["boxes"].dtype == torch.float32
    assert not moved["scores"][0].requires_grad


def nan_on_call(trainer, call):
    """Make the task's loss NaN on training_step call number ``call``."""
    original, calls = trainer.task.training_step, []

    def step(model, batch):
        calls.append(1)
        loss = original(model, batch)
        return loss * float("nan") if len(calls) == call else loss

    trainer.task.training_step = step


def test_a_nan_loss_stops_the_run_naming_the_step_and_keeps_the_checkpoint(tmp_path):
    from crossfuse.trainer import NonFiniteLoss

    trainer = make_trainer(tmp_path / "run", checkpoint_every=2)
    nan_on_call(trainer, 5)
    with pytest.raises(NonFiniteLoss, match=r"NaN or infinite at optimizer step 5 \(epoch 1, batch 5\).*checkpoint.*untouched"):
        trainer.fit()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last-state.pt", weights_only=True)
    assert saved["trainer"]["step"] == 4  # the step before the NaN; nothing NaN was written
    assert all(torch.isfinite(t).all() for t in load_file(tmp_path / "run" / "checkpoints" / "last.safetensors").values())


def test_nonfinite_skip_drops_that_step_and_trains_on(tmp_path):
    reference = make_trainer(tmp_path / "ref")
    reference.fit()
    trainer = make_trainer(tmp_path / "run", nonfinite="skip")
    nan_on_call(trainer, 5)
    state = trainer.fit()
    assert state.skipped_steps == 1 and state.step == reference.state.step - 1
    assert all(torch.isfinite(t).all() for t in weights(trainer).values())
    log = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"skipped": "optimizer step 5 (epoch 1, batch 5)"' in log


def test_a_stop_request_checkpoints_at_the_next_step_and_resumes_exactly(tmp_path):
    from crossfuse.trainer import StopRequested

    class StopAt(Callback):
        def on_step_end(self, trainer, state):
            if state.step == 4:
                trainer.request_stop()  # what SIGINT / SIGTERM do

    reference = make_trainer(tmp_path / "ref")
    reference.fit()
    stopped = make_trainer(tmp_path / "run", callbacks=[StopAt()])
    with pytest.raises(StopRequested):
        stopped.fit()
    assert stopped.state.step == 4
    resumed = make_trainer(tmp_path / "run")
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))


def test_sigterm_stops_training_with_a_checkpoint(tmp_path):
    import os
    import signal

    from crossfuse.trainer import StopRequested

    class SignalAt(Callback):
        def on_step_end(self, trainer, state):
            if state.step == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # a cluster's preemption notice

    trainer = make_trainer(tmp_path / "run", callbacks=[SignalAt()])
    with pytest.raises(StopRequested, match="signal 15"):
        trainer.fit()
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last-state.pt", weights_only=True)
    assert saved["trainer"]["step"] == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored after fit


def interrupted_at_step_4(run, **options):
    """A run stopped by Ctrl-C after optimizer step 4; its last weights and state files."""
    trainer = make_trainer(run, callbacks=[InterruptAt(4)], **options)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    folder = run / "checkpoints"
    return folder / "last.safetensors", folder / "last-state.pt"


@pytest.mark.parametrize("died", ["before the renames", "between the renames"])
def test_a_checkpoint_replacement_cut_short_leaves_a_whole_pair(tmp_path, died):
    import os

    reference = make_trainer(tmp_path / "ref")
    reference.fit()
    run = tmp_path / "run"
    weights_file, state_file = interrupted_at_step_4(run, checkpoint_every=2)
    # Simulate a process killed while replacing the step-4 checkpoint by a newer one.
    newer = {k: v + 1 for k, v in load_file(weights_file).items()}
    from safetensors.torch import save_file
    if died == "before the renames":
        save_file(newer, str(weights_file) + ".next", metadata={"step": "6"})
        (run / "checkpoints" / "last-state.pt.next").write_bytes(b"partial")
    else:  # the new weights are in place, their state is still pending
        os.replace(state_file, str(state_file) + ".next")
        state_file.write_bytes(b"an older state")
    resumed = make_trainer(run)
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))
    assert not list((run / "checkpoints").glob("*.next"))


def test_weights_and_state_of_different_steps_are_refused(tmp_path):
    from safetensors.torch import save_file

    from crossfuse.errors import CrossfuseError

    run = tmp_path / "run"
    weights_file, _ = interrupted_at_step_4(run)
    save_file(load_file(weights_file), str(weights_file), metadata={"step": "6"})
    with pytest.raises(CrossfuseError, match="holds step 6 but .*last-state.pt step 4"):
        make_trainer(run).fit(resume=True)


def test_resuming_with_another_number_of_processes_is_refused(tmp_path):
    from crossfuse.errors import CrossfuseError

    run = tmp_path / "run"
    _, state_file = interrupted_at_step_4(run)
    state = torch.load(state_file, weights_only=True)
    state["world_size"] = 2
    torch.save(state, state_file)
    with pytest.raises(CrossfuseError, match="written by 2 process.*Resume with --nproc 2"):
        make_trainer(run).fit(resume=True)


def test_rank_seeds_keep_rank_zero_and_differ_elsewhere():
    from crossfuse.distributed import Distributed

    seeds = [Distributed(rank=r, world_size=4, local_rank=r).rank_seed(13) for r in range(4)]
    assert seeds[0] == 13 and len(set(seeds)) == 4
    assert Distributed(rank=1, world_size=4, local_rank=1).rank_seed(13) == seeds[1]  # reproducible


def noisy(trainer):
    """Training points jittered in preprocess: an augmentation drawn from the RNG of whoever prepares it."""
    def preprocess(sample, train):
        points, label = sample
        return (points + 0.3 * torch.randn(2), label) if train else sample

    trainer.task.preprocess = preprocess
    return trainer


def test_augmentation_in_loader_workers_resumes_exactly_mid_epoch(tmp_path):
    reference = noisy(make_trainer(tmp_path / "ref", num_workers=2))
    reference.fit()
    interrupted = noisy(make_trainer(tmp_path / "run", num_workers=2, callbacks=[InterruptAt(4)]))
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = noisy(make_trainer(tmp_path / "run", num_workers=2))
    resumed.fit(resume=True)
    assert_same_weights(weights(reference), weights(resumed))


def test_augmentation_in_loader_workers_does_not_depend_on_how_many_there_are(tmp_path):
    one, two = noisy(make_trainer(None, num_workers=1, epochs=1)), noisy(make_trainer(None, num_workers=2, epochs=1))
    one.fit(), two.fit()
    assert_same_weights(weights(one), weights(two))


def _bert_with_head():
    from transformers import BertConfig, BertModel

    model = torch.nn.Module()
    model.backbone = BertModel(BertConfig(num_hidden_layers=3, hidden_size=32, num_attention_heads=2,
                                          intermediate_size=64, vocab_size=64))
    model.head = torch.nn.Linear(32, 3)
    return model


def _rates(model, config):
    """Learning rate of each named parameter in the optimizer groups."""
    from crossfuse.trainer import param_groups

    by_id = {id(p): name for name, p in model.named_parameters()}
    return {by_id[id(p)]: group["lr"] for group in param_groups(model, config, model.head.parameters())
            for p in group["params"]}


def test_layer_decay_slows_each_block_by_its_depth_and_leaves_the_head_alone():
    from crossfuse.config import TrainConfig

    model = _bert_with_head()
    rates = _rates(model, TrainConfig(lr=1e-4, head_lr=1e-3, layer_decay=0.5))
    # 3 blocks: embeddings depth 0, block i depth i + 1, the pooler on top (depth 4) at lr.
    assert rates["backbone.pooler.dense.weight"] == pytest.approx(1e-4)
    assert rates["backbone.encoder.layer.2.output.dense.weight"] == pytest.approx(0.5e-4)
    assert rates["backbone.encoder.layer.0.attention.self.query.weight"] == pytest.approx(0.125e-4)
    assert rates["backbone.embeddings.word_embeddings.weight"] == pytest.approx(0.0625e-4)
    assert rates["head.weight"] == rates["head.bias"] == pytest.approx(1e-3)


def test_without_layer_decay_every_pretrained_parameter_learns_at_lr():
    from crossfuse.config import TrainConfig

    model = _bert_with_head()
    rates = _rates(model, TrainConfig(lr=1e-4, head_lr=1e-3))
    assert {rate for name, rate in rates.items() if name.startswith("backbone.")} == {1e-4}
    assert rates["head.weight"] == pytest.approx(1e-3)

