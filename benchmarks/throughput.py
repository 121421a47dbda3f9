"""Training throughput: steps/s, samples/s, model FLOP utilisation and data loading, crossfuse against plain PyTorch.

    python benchmarks/throughput.py              # finance-sentiment (tiny-bert), security-face-match (resnet18, 64 px)
    python benchmarks/throughput.py --steps 2 --warmup 1 --loader-batches 3      # the quickest check
    python benchmarks/throughput.py --task finance-sentiment --backbone minilm --batch-size 32
    python benchmarks/throughput.py --device cuda --precision bf16 --compile --workers 0 4 --out result.json

For each task, in one process and side by side:

- the plain PyTorch loop and crossfuse's Trainer (``trainer_overhead.py``) train the same model on
  the same data: milliseconds and samples per step, and the ratio crossfuse / plain;
- model FLOP utilisation (MFU): the FLOPs of one training step (forward and backward, counted by
  ``torch.utils.flop_counter.FlopCounterMode`` on the eager model, averaged over a few batches)
  times steps per second, over the device's peak: a datasheet figure for known GPUs, else a large
  matmul measured here (the CPU case);
- data loading alone: the task's training DataLoader as the trainer builds it (``Preprocessed``
  + ``task.collate``) for N batches with 0 and 2 workers, in batches per second against the
  training step rate (ratio > 1: loading keeps up with training).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from dataclasses import asdict, replace
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers would warn in every forked loader worker

import torch  # noqa: E402
from trainer_overhead import AMP_DTYPES, Bench, build, crossfuse_loop, plain_loop, synchronize, to_device  # noqa: E402

# Defaults that take about 30 s together on 2 CPU cores (README.md).
DEFAULTS = {"finance-sentiment": ("tiny-bert", 16, ()),
            "security-face-match": ("resnet18", 32, ("backbone.image_size=64",))}

# Dense (no sparsity) peak tensor-core TFLOP/s per GPU from NVIDIA's datasheets: (bf16/fp16, tf32, fp32).
# H100/H200: "NVIDIA H100 Tensor Core GPU" and "NVIDIA H200 Tensor Core GPU" datasheets (SXM: 989 bf16 dense,
# 1979 with sparsity; NVL / PCIe below). A100: "NVIDIA A100 Tensor Core GPU" datasheet (312 / 156 / 19.5).
# L40S, L40, L4, A10: their product datasheets (sparsity figures halved). B200: HGX B200 datasheet per GPU.
# GeForce RTX 4090: Ada Lovelace architecture whitepaper, Appendix A (bf16 with fp32 accumulation).
# The first name contained in torch.cuda.get_device_name() wins, so longer names come first.
GPU_PEAK_TFLOPS: list[tuple[str, tuple[float, float, float] | None]] = [
    ("GH200", (989.0, 494.0, 67.0)),
    ("H200 NVL", (835.0, 417.5, 60.0)),
    ("H200", (989.0, 494.0, 67.0)),
    ("H100 NVL", (835.0, 417.5, 60.0)),
    ("H100 PCIe", (756.0, 378.0, 51.0)),
    ("H100", (989.0, 494.0, 67.0)),
    ("B200", (2250.0, 1125.0, 75.0)),
    ("A100", (312.0, 156.0, 19.5)),
    ("L40S", (362.0, 183.0, 91.6)),
    ("L40", (181.0, 90.5, 90.5)),
    ("L4", (121.0, 60.0, 30.3)),
    ("A10G", None),  # AWS's A10G: no NVIDIA datasheet, so its peak is measured
    ("A10", (125.0, 62.5, 31.2)),
    ("RTX 4090", (165.2, 82.6, 82.6)),
]


# -- FLOPs and peaks ---------------------------------------------------------------------------


def step_flops(bench: Bench, task: Any, data: Any, model: torch.nn.Module, batches: int = 3) -> float:
    """Mean FLOPs of one training step (forward + backward; the optimizer's elementwise work is not
    counted, as usual for MFU) over ``batches`` training batches, on the eager model."""
    from torch.utils.flop_counter import FlopCounterMode

    from crossfuse.trainer import Preprocessed

    device = torch.device(bench.device)
    model.to(device).train()
    if bench.channels_last:
        model.to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(Preprocessed(data.train, _shuffled(len(data.train)), task, train=True),
                                         batch_size=bench.batch_size, collate_fn=task.collate)
    amp_dtype = AMP_DTYPES[bench.precision]
    total = 0
    for _, batch in zip(range(batches), loader):
        with FlopCounterMode(display=False) as counter:
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = task.training_step(model, to_device(batch, device, bench.channels_last))
            loss.backward()
        total += counter.get_total_flops()
        model.zero_grad(set_to_none=True)
    return total / batches


def _shuffled(count: int, seed: int = 0) -> list[int]:
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


def datasheet_peak(device: torch.device, precision: str, tf32: bool = True) -> float | None:
    """FLOP/s of this GPU from :data:`GPU_PEAK_TFLOPS` for ``precision``; None when it is not listed."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in GPU_PEAK_TFLOPS:
        if key in name:
            if peaks is None:
                return None
            half, tf32_peak, fp32 = peaks
            return 1e12 * (half if precision in ("bf16", "fp16") else tf32_peak if tf32 else fp32)
    return None


def matmul_peak(device: torch.device, precision: str, largest: int | None = None, seconds: float = 0.5) -> float:
    """FLOP/s of a square matmul in ``precision`` measured here. The side doubles from 256 while one
    product takes under 50 ms, up to ``largest`` (2048 on a CPU, 8192 on a GPU): a CPU without bf16
    instructions (AVX2 only) runs bf16 products a hundred times slower than fp32 ones."""
    largest = largest or (8192 if device.type == "cuda" else 2048)
    dtype = AMP_DTYPES[precision] or torch.float32
    size = 256
    while True:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        torch.mm(a, b)  # first call: kernel selection, thread pool start
        synchronize(device)
        started = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        if size >= largest or time.perf_counter() - started > 0.05:
            break
        size *= 2
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or runs < 2:
        torch.mm(a, b)
        runs += 1
        if device.type == "cuda" and runs % 10 == 0:
            synchronize(device)
    synchronize(device)
    return 2 * size**3 * runs / (time.perf_counter() - started)


def device_peak(device: torch.device, precision: str) -> tuple[float, str]:
    """The peak MFU is measured against, and where it comes from."""
    peak = datasheet_peak(device, precision)
    if peak is not None:
        return peak, f"datasheet {torch.cuda.get_device_name(device)} {precision} dense"
    return matmul_peak(device, precision), f"measured {precision} matmul on {device.type}"


# -- data loading ------------------------------------------------------------------------------


def loader_rate(bench: Bench, task: Any, data: Any, workers: int, batches: int) -> dict[str, float]:
    """Batches per second of the training DataLoader alone (steady rate after the first batch, whose
    wait, worker start-up included, is reported apart: the trainer pays it once per epoch)."""
    from crossfuse.trainer import Preprocessed

    dataset = Preprocessed(data.train, _shuffled(len(data.train)), task, train=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=bench.batch_size, collate_fn=task.collate,
                                         num_workers=workers, pin_memory=bench.device.startswith("cuda"))
    started = time.perf_counter()
    first = last = started
    count = 0
    for count, _ in enumerate(loader, start=1):
        last = time.perf_counter()
        if count == 1:
            first = last
        if count == batches:
            break
    rate = (count - 1) / (last - first) if count > 1 and last > first else float("nan")
    return {"workers": workers, "batches": count, "batches_per_s": rate, "first_batch_s": first - started}


# -- one case ----------------------------------------------------------------------------------


def release() -> None:
    """Free what the previous loop left: compiled graphs (torch.compile would otherwise keep recompiling
    into its cache limit), the CUDA cache, garbage."""
    gc.collect()
    torch._dynamo.reset()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def measure(bench: Bench, steps: int, warmup: int, workers: tuple[int, ...] = (0, 2), loader_batches: int = 20,
            flop_batches: int = 3) -> dict[str, Any]:
    """Everything this script reports for one task, as a dict (seconds, FLOPs and rates)."""
    bench = bench.resolved()
    device = torch.device(bench.device)
    config, task, data, model = build(bench, max(loader_batches, flop_batches) + 1)
    flops = step_flops(bench, task, data, model, flop_batches)
    del model
    release()
    plain = plain_loop(bench, steps, warmup)
    release()
    ours = crossfuse_loop(bench, steps, warmup)  # the Trainer keeps torch's thread count when it is <= the cores
    release()
    peak, peak_source = device_peak(device, bench.precision)
    loaders = [loader_rate(bench, task, data, w, loader_batches) for w in workers]
    for loader in loaders:
        loader["ratio_to_training"] = loader["batches_per_s"] * ours
    result = {**{k: v for k, v in asdict(bench).items() if k != "make_backbone"}, "backbone": config.backbone.name,
              "steps": steps, "warmup": warmup, "threads": torch.get_num_threads(),
              "plain_s_per_step": plain, "crossfuse_s_per_step": ours, "ratio": ours / plain,
              "plain_samples_per_s": bench.batch_size / plain, "crossfuse_samples_per_s": bench.batch_size / ours,
              "flops_per_step": flops, "peak_flops": peak, "peak_source": peak_source,
              "mfu_plain": flops / plain / peak, "mfu_crossfuse": flops / ours / peak, "loaders": loaders}
    if device.type == "cuda":
        result["device_name"] = torch.cuda.get_device_name(device)
        result["max_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return result


def report(result: dict[str, Any]) -> str:
    """The lines this script prints for one :func:`measure` result."""
    r = result
    lines = [f"== {r['task']}, backbone {r['label'] or r['backbone']}: batch {r['batch_size']}, {r['device']}, "
             f"{r['precision']}, "
             f"compile {'on' if r['compile'] else 'off'}, channels-last {'on' if r['channels_last'] else 'off'}, "
             f"{r['threads']} threads, {r['steps']} steps after {r['warmup']} warm-up"]
    for name, key in (("plain PyTorch", "plain"), ("crossfuse", "crossfuse")):
        seconds = r[f"{key}_s_per_step"]
        lines.append(f"{name:14} {seconds * 1000:9.1f} ms/step {1 / seconds:9.2f} steps/s "
                     f"{r[f'{key}_samples_per_s']:9.1f} samples/s   MFU {100 * r[f'mfu_{key}']:6.2f} %")
    lines.append(f"ratio crossfuse / plain = {r['ratio']:.3f}")
    lines.append(f"FLOPs per training step {r['flops_per_step'] / 1e9:.3f} GFLOP (forward + backward); "
                 f"peak {r['peak_flops'] / 1e9:.1f} GFLOP/s ({r['peak_source']})")
    for loader in r["loaders"]:
        lines.append(f"data loading, {loader['workers']} workers: {loader['batches_per_s']:8.2f} batches/s over "
                     f"{loader['batches']} batches (first batch after {loader['first_batch_s']:.2f} s); "
                     f"ratio loading / training = {loader['ratio_to_training']:.2f}")
    return "\n".join(lines)


def benches(args: argparse.Namespace) -> list[Bench]:
    """One :class:`Bench` per ``--task``, with its ``--backbone`` (in the same order) or its default."""
    if args.backbone and len(args.backbone) != len(args.task):
        sys.exit(f"give one --backbone per --task ({len(args.task)} tasks, {len(args.backbone)} backbones)")
    out = []
    for i, task in enumerate(args.task):
        backbone, batch_size, overrides = DEFAULTS.get(task, ("", 16, ()))
        backbone = args.backbone[i] if args.backbone else backbone  # "": the task's own default
        bench = Bench(task=task, backbone=backbone, batch_size=args.batch_size or batch_size, device=args.device,
                      precision=args.precision, compile=args.compile, num_workers=args.train_workers,
                      overrides=tuple(overrides) + tuple(args.set))
        out.append(replace(bench, channels_last=args.channels_last))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", nargs="+", default=list(DEFAULTS))
    parser.add_argument("--backbone", nargs="+", help="one per --task (default: tiny-bert, resnet18; other tasks: their own)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--compile", action="store_true", help="torch.compile the model in both loops")
    parser.add_argument("--channels-last", action="store_true", help="vision: NHWC in both loops")
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per loop")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before them")
    parser.add_argument("--batch-size", type=int, help="default: 16 for text, 32 for images")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers to time loading with")
    parser.add_argument("--train-workers", type=int, default=0, help="DataLoader workers of the two training loops")
    parser.add_argument("--loader-batches", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides for every task")
    parser.add_argument("--out", help="also write the results as JSON to this file")
    args = parser.parse_args()
    started, results = time.perf_counter(), []
    for bench in benches(args):
        section = time.perf_counter()
        results.append(measure(bench, args.steps, args.warmup, tuple(args.workers), args.loader_batches))
        print(report(results[-1]))
        print(f"({time.perf_counter() - section:.1f} s)\n", flush=True)
    print(f"total {time.perf_counter() - started:.1f} s")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
