"""The GPU benchmark, in one five-minute run: BERT-base and ResNet-50 through crossfuse's Trainer against plain PyTorch.

    python benchmarks/gpu.py --out gpu.json     # one CUDA machine, no internet: about 5 minutes on an H100/H200
    python benchmarks/gpu.py --smoke            # the same code paths on the CPU: tiny models, 2 steps (~40 s)
    python benchmarks/gpu.py --smoke --sections all     # ... with the torch.compile sections too (minutes on a CPU)
    python benchmarks/gpu.py --sections bert-compiled resnet50-compiled     # rerun a part

Sections, in this order (a section that would start past ``--budget`` seconds is skipped):

- ``bert-eager``, ``bert-compiled``: BERT-base (``BertConfig()`` defaults, random init, no download)
  on the finance demo headlines, sequence length 128 (every batch padded to it), batch 32, bf16;
- ``resnet50-eager``, ``resnet50-compiled``: torchvision ResNet-50 (random init) on the face demo
  identities at 224 px, batch 64, bf16, channels-last;
- ``ddp``: with two GPUs or more, ``crossfuse run finance-sentiment --nproc 2 --device cuda`` against
  one process with the same global batch (two ranks of 8 against one of 16 samples), a small BERT
  from a config folder without dropout, fp32: their final validation macro-F1 must agree within
  ``DDP_TOLERANCE`` (the smoke run does this on 2 CPU processes under gloo).

Each measuring section runs ``throughput.measure`` (plain loop and Trainer side by side: ms/step,
ratio, samples/s, MFU against the GPU's datasheet peak, data loading against the step rate) in a
process of its own, with a time limit: a slow compile or a hang costs that section, not the run.
Prints each section's lines and its elapsed time, then a markdown table; ``--out`` also writes JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the GPU machine has no internet: fail at once, never wait on the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

EAGER = ("bert-eager", "resnet50-eager")
COMPILED = ("bert-compiled", "resnet50-compiled")
ORDER = (*EAGER, "ddp", *COMPILED)  # most wanted first: the compiled sections cost most (cold compiles)
DDP_TOLERANCE = 0.02  # |macro-F1 of 2 ranks - macro-F1 of 1 rank| on validation (111 headlines: ~2 answers)


@dataclass(frozen=True)
class Plan:
    """How one measuring section runs: timed steps, warm-up and its time limit."""

    steps: int
    warmup: int
    limit_s: float
    loader_batches: int = 20


PLANS = {False: Plan(steps=50, warmup=10, limit_s=90.0), True: Plan(steps=2, warmup=1, limit_s=120.0, loader_batches=3)}
COMPILE_LIMIT_S = 150.0  # a cold torch.compile of BERT-base forward + backward takes about a minute


# -- the models --------------------------------------------------------------------------------


def fixed_length_bert(seq_len: int, bert_options: dict[str, Any], config: Any) -> Any:
    """A BERT encoder from a ``BertConfig`` (random init) with crossfuse's character tokenizer, every
    batch padded to ``seq_len`` tokens: fixed shapes, as in the usual seq-128 numbers, and no
    recompiles under torch.compile."""
    from transformers import BertConfig, BertModel

    from crossfuse.backbones.text import TextBackbone, tiny_vocab, wordpiece_tokenizer

    class FixedLengthText(TextBackbone):
        def tokenize(self, texts: list[str]) -> dict[str, Any]:
            encoded = self.tokenizer(list(texts), padding="max_length", truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
            return {key: encoded[key] for key in ("input_ids", "attention_mask")}

    return FixedLengthText(BertModel(BertConfig(**bert_options)), wordpiece_tokenizer(tiny_vocab()), pooling="mean",
                           max_length=seq_len)


def gpu_workers(model: str) -> int:
    """DataLoader workers of the GPU loops: tokenizing 32 headlines is light work; decoding 64 faces and
    resizing them to 224 px takes a CPU core about 100 ms, against a ResNet-50 step of some 20 ms."""
    return max(2, min(4 if model == "bert" else 12, (os.cpu_count() or 8) - 4))


def bench_for(name: str, smoke: bool) -> Any:
    """The :class:`trainer_overhead.Bench` of a measuring section (tiny models on the CPU with ``smoke``)."""
    from trainer_overhead import Bench

    compiled = name.endswith("-compiled")
    model = name.split("-")[0]
    device, workers = ("cpu", 0) if smoke else ("cuda", gpu_workers(model))
    if model == "bert":
        options = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128) if smoke else {}
        seq_len = 32 if smoke else 128
        return Bench(task="finance-sentiment", backbone="tiny-bert", label="bert-tiny" if smoke else "bert-base",
                     make_backbone=functools.partial(fixed_length_bert, seq_len, options), batch_size=4 if smoke else 32,
                     device=device, precision="bf16", compile=compiled, num_workers=workers)
    overrides = ("backbone.pretrained=false", f"backbone.image_size={32 if smoke else 224}")
    if smoke:  # a smaller demo set is written in a third of the time (the tests start from an empty cache)
        overrides += ("data.demo.train_identities=16", "data.demo.train_images=4", "data.demo.test_identities=8",
                      "data.demo.test_images=2", "data.demo.folds=2", "data.demo.pairs_per_fold=4")
    # bf16 convolutions on a CPU without bf16 instructions (AVX2) take seconds a step: the smoke run's ResNet is fp32.
    return Bench(task="security-face-match", backbone="resnet18" if smoke else "resnet50", batch_size=4 if smoke else 64,
                 device=device, precision="fp32" if smoke else "bf16", compile=compiled, channels_last=True,
                 num_workers=workers, overrides=overrides)


# -- sections, each in a child process ----------------------------------------------------------


def run_child(name: str, smoke: bool, result_path: str) -> None:
    """Measure section ``name`` in this process and write its result to ``result_path``."""
    if name == "ddp":
        result = ddp_check(smoke)
    else:
        from throughput import measure, report

        plan = PLANS[smoke]
        bench = bench_for(name, smoke)
        # Loading does not depend on compilation: the compiled sections leave it to the eager ones.
        workers = () if bench.compile else (0, bench.num_workers or 2)
        result = measure(bench, plan.steps, plan.warmup, workers, plan.loader_batches, flop_batches=1 if bench.compile else 3)
        print(report(result), flush=True)
    Path(result_path).write_text(json.dumps(result, indent=2), encoding="utf-8")


def ddp_check(smoke: bool) -> dict[str, Any]:
    """``crossfuse run finance-sentiment`` in 1 process with batch 16 and in 2 with batch 8 each.

    Rank r takes every other sample of the one-process order, so every optimizer step sees the same
    16 samples; DDP broadcasts rank 0's initial weights, which are the one-process ones. With dropout
    off (a BERT config folder with no dropout, ``head.dropout=0``) and fp32 without TF32, only the
    order of floating-point sums differs: the final validation metrics agree closely (on 2 CPU
    processes under gloo they agreed to 4 decimals), and ``DDP_TOLERANCE`` leaves room for NCCL.
    """
    device, epochs = ("cpu", 1) if smoke else ("cuda", 4)
    with tempfile.TemporaryDirectory(prefix="crossfuse-ddp-") as tmp:
        size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128) if smoke else \
            dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
        backbone = write_bert_folder(Path(tmp) / "bert", **size)
        common = ["run", "finance-sentiment", "--backbone", str(backbone), "--device", device, "--epochs", str(epochs),
                  "--seed", "13"]
        for key_value in ("backbone.pretrained=false", "head.dropout=0", "train.lr=1e-3", "train.head_lr=null",
                          "train.precision=fp32", "train.tf32=false", "train.progress=false",
                          *(["train.max_steps=2"] if smoke else [])):
            common += ["--set", key_value]
        runs = {}
        for ranks, batch in ((1, 16), (2, 8)):
            output = Path(tmp) / f"ranks{ranks}"
            argv = common + ["--output", str(output), "--set", f"train.batch_size={batch}"]
            runs[ranks] = cli_run(argv + (["--nproc", str(ranks)] if ranks > 1 else []), output)
    one, two = runs[1]["macro_f1"], runs[2]["macro_f1"]
    difference = abs(one - two)
    result = {"kind": "ddp", "device": device, "epochs": epochs, "global_batch": 16, "one_rank": runs[1],
              "two_ranks": runs[2], "difference": difference, "tolerance": DDP_TOLERANCE,
              "within_tolerance": difference <= DDP_TOLERANCE}
    print(f"validation macro-F1: 1 rank {one:.4f}, 2 ranks {two:.4f}, difference {difference:.4f} "
          f"({'within' if result['within_tolerance'] else 'OUTSIDE'} the tolerance {DDP_TOLERANCE}); ROC AUC "
          f"{runs[1]['macro_roc_auc']:.4f} and {runs[2]['macro_roc_auc']:.4f}", flush=True)
    if runs[2]["processes_per_gpu"] is not None:  # more than 1: a rank opened a CUDA context on another rank's GPU
        print(f"processes seen per GPU (nvidia-smi) during the 2-rank run: {runs[2]['processes_per_gpu']}", flush=True)
    return result


def write_bert_folder(folder: Path, **size: Any) -> Path:
    """A Hugging Face folder (config.json and crossfuse's character tokenizer) for a BERT without
    dropout, which ``--backbone FOLDER --set backbone.pretrained=false`` builds with random weights."""
    from transformers import BertConfig

    from crossfuse.backbones.text import tiny_vocab, wordpiece_tokenizer

    vocab = tiny_vocab()
    BertConfig(vocab_size=len(vocab), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
               **size).save_pretrained(str(folder))
    wordpiece_tokenizer(vocab).save_pretrained(str(folder))
    return folder


def cli_run(argv: list[str], output: Path) -> dict[str, Any]:
    """Run ``crossfuse ARGV``; return the validation metrics, steps and wall time from its report, and on
    CUDA the most processes nvidia-smi saw on each GPU meanwhile (a rank should touch its own GPU only)."""
    started = time.perf_counter()
    watch = "cuda" in argv and shutil.which("nvidia-smi") is not None
    busiest: Counter[str] = Counter()
    with tempfile.TemporaryFile("w+") as log:
        child = subprocess.Popen([sys.executable, "-m", "crossfuse.cli", *argv], stdout=log, stderr=subprocess.STDOUT,
                                 text=True)
        while child.poll() is None:
            for gpu, count in (gpu_processes() if watch else Counter()).items():
                busiest[gpu] = max(busiest[gpu], count)
            time.sleep(1.0)
        if child.returncode:
            log.seek(0)
            raise RuntimeError(f"crossfuse {' '.join(argv)} exited {child.returncode}:\n{log.read()[-3000:]}")
    report = json.loads((output / "report.json").read_text(encoding="utf-8"))
    validation = report["splits"]["validation"]
    return {"macro_f1": float(validation["macro_f1"]), "macro_roc_auc": float(validation["macro_roc_auc"]),
            "steps": report["steps"], "run_wall_s": report["wall_time_s"], "process_s": time.perf_counter() - started,
            "processes_per_gpu": sorted(busiest.values()) if watch else None}


def gpu_processes() -> Counter[str]:
    """Processes holding a CUDA context on each GPU, by GPU UUID (empty where nvidia-smi cannot tell)."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-compute-apps=gpu_uuid,pid", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return Counter()
    return Counter(line.split(",")[0].strip() for line in done.stdout.splitlines() if "," in line)


def run_section(name: str, smoke: bool, limit_s: float) -> dict[str, Any]:
    """Run a section in a child process (its own session, so a time-out kills torchrun's workers too)."""
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = handle.name
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--result", result_path]
    child = subprocess.Popen(command + (["--smoke"] if smoke else []), start_new_session=True)
    try:
        code = child.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        stop_group(child)
        code = None
    elapsed = time.perf_counter() - started
    try:
        text = Path(result_path).read_text(encoding="utf-8")
    finally:
        os.unlink(result_path)
    if code is None:
        return {"status": f"timed out after {limit_s:.0f} s", "elapsed_s": elapsed}
    if code or not text:
        return {"status": f"failed (exit {code})", "elapsed_s": elapsed}
    return {"status": "ok", "elapsed_s": elapsed, "result": json.loads(text)}


def stop_group(child: subprocess.Popen, grace_s: float = 30.0) -> None:
    """End a child started in a session of its own and everything in its process group. SIGTERM first:
    torchrun, left in the group when its launcher dies, passes it on to its workers (which run in
    sessions of their own) and waits for them; SIGKILL whatever is still there after ``grace_s``."""
    os.killpg(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        child.poll()  # reap the child itself: a zombie still counts as a member of its group
        try:
            os.killpg(child.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def sections_to_run(requested: list[str] | None, smoke: bool, gpus: int) -> list[tuple[str, str | None]]:
    """``(section, reason it is skipped or None)`` in run order."""
    if requested == ["all"]:
        chosen = list(ORDER)
    elif requested:
        chosen = [name for name in ORDER if name in requested]
    else:  # a cold compile on a CPU takes minutes: the smoke run leaves it out unless asked
        chosen = [name for name in ORDER if not (smoke and name in COMPILED)]
    plan = []
    for name in chosen:
        reason = None
        if name == "ddp" and not smoke and gpus < 2:
            reason = f"needs 2 GPUs, found {gpus}"
        elif not smoke and gpus < 1:
            reason = "no CUDA device (use --smoke to check the code paths on the CPU)"
        plan.append((name, reason))
    return plan


# -- output ------------------------------------------------------------------------------------


def markdown(sections: dict[str, dict[str, Any]]) -> str:
    """The results as a markdown table, plus the compile speed-ups and the DDP check."""
    lines = ["| section | model | batch | compile | plain ms/step | crossfuse ms/step | ratio crossfuse / plain "
             "| crossfuse samples/s | MFU | loading / training | time s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, record in sections.items():
        r = record.get("result")
        if r is None:
            lines.append(f"| {name} | {record['status']} | | | | | | | | | {record.get('elapsed_s', 0):.0f} |")
            continue
        if name == "ddp":  # summarised below the table
            continue
        loader = r["loaders"][-1] if r["loaders"] else None
        loading = f"{loader['ratio_to_training']:.2f} ({loader['workers']} workers)" if loader else "-"
        lines.append(f"| {name} | {r['label'] or r['backbone']} | {r['batch_size']} | {'on' if r['compile'] else 'off'} "
                     f"| {1000 * r['plain_s_per_step']:.1f} | {1000 * r['crossfuse_s_per_step']:.1f} | {r['ratio']:.3f} "
                     f"| {r['crossfuse_samples_per_s']:.0f} | {100 * r['mfu_crossfuse']:.1f} % "
                     f"| {loading} | {record['elapsed_s']:.0f} |")
    for model in ("bert", "resnet50"):
        eager, compiled = (sections.get(f"{model}-{kind}", {}).get("result") for kind in ("eager", "compiled"))
        if eager and compiled:
            ours, plain = (eager[f"{k}_s_per_step"] / compiled[f"{k}_s_per_step"] for k in ("crossfuse", "plain"))
            lines.append(f"\ntorch.compile speed-up, {model}: crossfuse {ours:.2f}x, plain {plain:.2f}x")
    ddp = sections.get("ddp", {}).get("result")
    if ddp:
        lines.append(f"\nDDP check ({ddp['device']}, {ddp['epochs']} epochs, global batch {ddp['global_batch']}): validation "
                     f"macro-F1 1 rank {ddp['one_rank']['macro_f1']:.4f}, 2 ranks {ddp['two_ranks']['macro_f1']:.4f}, "
                     f"difference {ddp['difference']:.4f} -> "
                     f"{'within' if ddp['within_tolerance'] else 'OUTSIDE'} the tolerance {ddp['tolerance']}")
    return "\n".join(lines)


def write_json(path: str | None, document: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(document, indent=2), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU, 2 steps: checks the code paths")
    parser.add_argument("--sections", nargs="+", choices=[*ORDER, "all"], help="default: all but compiled ones with --smoke")
    parser.add_argument("--budget", type=float, default=285.0, help="seconds; sections that would start later are skipped")
    parser.add_argument("--out", help="write the results as JSON here too")
    parser.add_argument("--child", choices=ORDER, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.child, args.smoke, args.result)
        return
    import torch

    started = time.perf_counter()
    gpus = torch.cuda.device_count()
    document: dict[str, Any] = {"smoke": args.smoke, "gpus": gpus, "torch": torch.__version__, "sections": {}}
    for name, reason in sections_to_run(args.sections, args.smoke, gpus):
        left = args.budget - (time.perf_counter() - started)
        if reason is None and left < 20:
            reason = f"time budget: {left:.0f} s left of {args.budget:.0f} s"
        if reason:
            document["sections"][name] = {"status": f"skipped: {reason}"}
            print(f"-- {name}: skipped ({reason})", flush=True)
            continue
        print(f"-- {name}: starting at {time.perf_counter() - started:.0f} s", flush=True)
        limit = COMPILE_LIMIT_S if name in COMPILED else PLANS[args.smoke].limit_s
        record = run_section(name, args.smoke, min(limit, math.floor(left)))
        document["sections"][name] = record
        print(f"-- {name}: {record['status']} in {record['elapsed_s']:.1f} s\n", flush=True)
        write_json(args.out, document)  # what finished survives a kill of this script
    document["elapsed_s"] = time.perf_counter() - started
    print(markdown(document["sections"]))
    print(f"\ntotal {document['elapsed_s']:.1f} s")
    write_json(args.out, document)
    if any(record["status"].startswith(("failed", "timed out")) for record in document["sections"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
