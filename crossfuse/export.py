"""``crossfuse export``: a trained run as ONNX or TorchScript (optionally int8), checked against PyTorch.

What goes into the file is the task's choice, through :meth:`crossfuse.task.Task.export_spec`: an
:class:`ExportSpec` names the module to export, its example inputs and the way to put a stand-in
(the exported runtime, wrapped as a module: :class:`ExportedModule`) back into the model. The
parity check then runs the task's own evaluation (``predict_step`` over the run's test split,
``compute_metrics``) twice, with PyTorch and with the stand-in, and writes both side by side.

Layout of an export folder (default ``RUN_DIR/export/FORMAT[-int8]``)::

    model.onnx | model.pt      the exported part (int8 weights in a -int8 folder)
    preprocessing.json         inputs (names, dtypes, shapes, dynamic axes), what produces them,
                               labels and task state, what the outputs mean, what is left out
    tokenizer/                 text runs: the tokenizer that makes input_ids / attention_mask
    parity.json                exported vs PyTorch on the test split (and fp32 vs int8)
"""

from __future__ import annotations

import copy
import inspect
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

from .errors import ConfigError, CrossfuseError

FORMATS = ("onnx", "torchscript")
MODEL_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
DESCRIPTOR_FILE = "preprocessing.json"
PARITY_FILE = "parity.json"
OPSET = 17
FP32_TOLERANCE = 1e-4  # beyond this max abs difference the CLI warns that the export drifts
# Variable-length axes of the inputs the core's backbones produce (``tokenize`` / ``featurize``), by modality.
BACKBONE_AXES = {"text": {"input_ids": {1: "sequence"}, "attention_mask": {1: "sequence"},
                          "token_type_ids": {1: "sequence"}},
                 "audio": {"waveforms": {1: "samples"}}}


@dataclass
class ExportSpec:
    """What :meth:`Task.export_spec` returns: the part of the model that goes into the file.

    ``module`` is called as ``module(**inputs)`` (``keywords=True``) or ``module(*inputs.values())``
    and returns a tensor, a tuple of tensors or a dict of tensors (``structure``). ``install(model,
    stand_in)`` returns a model whose ``predict_step`` runs ``stand_in`` wherever ``module`` ran
    (default: ``stand_in`` is the whole model). ``left_out`` says which part of the model is not
    in the file and what a caller must do instead; ``outputs`` what each output means.
    """

    module: Any
    inputs: dict[str, Any]
    output_names: list[str]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)
    structure: Literal["tensor", "tuple", "dict"] = "tensor"
    keywords: bool = True
    install: Callable[[Any, Any], Any] = field(default=lambda model, stand_in: stand_in)
    part: str = "the whole model"
    outputs: dict[str, str] = field(default_factory=dict)
    left_out: str = ""


@dataclass
class ExportResult:
    """What :func:`export_run` wrote: the folder, its model file, the descriptor and the parity figures."""

    folder: Path
    model_file: Path
    descriptor: dict[str, Any]
    parity: dict[str, Any]


# -- the spec ------------------------------------------------------------------------------------


def spec_from_call(task: Any, model: Any, batch: dict[str, Any]) -> ExportSpec:
    """The default :meth:`Task.export_spec`: the whole ``model``, with the tensors ``predict_step``
    calls it with on ``batch`` (recorded by a forward hook) as its named inputs.

    Dim 0 of every input and output is the batch; the sequence axis of text inputs and the sample
    axis of waveforms (the core backbones' ``tokenize`` / ``featurize`` outputs) vary too.
    """
    import torch

    seen: list[tuple[tuple, dict, Any]] = []

    def record(module, args, kwargs, output):
        if not seen:
            seen.append((args, dict(kwargs), output))

    handle = model.register_forward_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            task.predict_step(model, batch)
    finally:
        handle.remove()
    if not seen:
        raise CrossfuseError(f"task {task.name!r}: its predict_step never calls the model itself (it calls parts of "
                             f"it), so the default export cannot tell what to export; the task must implement "
                             f"Task.export_spec (see docs/plugins.md)")
    args, kwargs, output = seen[0]
    inputs = {**_positional_names(model, args), **kwargs}
    bad = [name for name, value in inputs.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CrossfuseError(f"task {task.name!r}: its model takes {', '.join(bad)} as something other than a tensor "
                             f"(a list of images, say), which the default export cannot trace; the task must "
                             f"implement Task.export_spec (see docs/plugins.md)")
    structure, names = output_structure(output)
    axes = batch_axes(list(inputs) + names)
    for backbone in getattr(task, "backbones", {}).values():
        for name, extra in BACKBONE_AXES.get(getattr(backbone, "modality", ""), {}).items():
            if name in axes:
                axes[name] = {**axes[name], **extra}
    return ExportSpec(module=model, inputs=inputs, output_names=names, dynamic_axes=axes, structure=structure,
                      keywords=bool(kwargs) or _has_names(model, args))


def _positional_names(model: Any, args: tuple) -> dict[str, Any]:
    parameters = [p for p in inspect.signature(model.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(parameters) >= len(args):
        return {p.name: value for p, value in zip(parameters, args)}
    return {f"input_{i}": value for i, value in enumerate(args)}


def _has_names(model: Any, args: tuple) -> bool:
    parameters = inspect.signature(model.forward).parameters.values()
    return len([p for p in parameters if p.kind == p.POSITIONAL_OR_KEYWORD]) >= len(args)


def output_structure(output: Any) -> tuple[str, list[str]]:
    """``("tensor", ["output"])``, ``("tuple", ["output_0", ...])`` or ``("dict", keys)`` for a model's output."""
    import torch

    if isinstance(output, torch.Tensor):
        return "tensor", ["output"]
    if isinstance(output, (tuple, list)) and all(isinstance(o, torch.Tensor) for o in output):
        return "tuple", [f"output_{i}" for i in range(len(output))]
    if isinstance(output, dict) and all(isinstance(o, torch.Tensor) for o in output.values()):
        return "dict", list(output)
    raise CrossfuseError(f"the model returns {type(output).__name__}, not tensors; the task must implement "
                         f"Task.export_spec with a module that returns tensors")


def batch_axes(names: Sequence[str]) -> dict[str, dict[int, str]]:
    """Dim 0 of each named input or output is the batch."""
    return {name: {0: "batch"} for name in names}


# -- modules around the export -------------------------------------------------------------------


def _flat_module(spec: ExportSpec) -> Any:
    """``spec.module`` taking its inputs positionally and returning a tensor or a tuple (what tracing needs)."""
    from torch import nn

    class Flat(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = spec.module

        def forward(self, *tensors):
            named = dict(zip(spec.inputs, tensors))
            output = self.inner(**named) if spec.keywords else self.inner(*tensors)
            if spec.structure == "dict":
                return tuple(output[name] for name in spec.output_names)
            return tuple(output) if spec.structure == "tuple" else output

    return Flat().eval()


class _Runtime:
    """One exported file, run on the CPU: ``run(tensors) -> list of tensors``."""

    def __init__(self, path: Path, fmt: str, input_names: list[str]):
        self.path, self.format, self.input_names = path, fmt, input_names
        if fmt == "onnx":
            import onnxruntime

            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self.feeds = [i.name for i in self.session.get_inputs()]  # the exporter drops unused inputs
        else:
            import torch

            self.module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(self, tensors: Sequence[Any]) -> list[Any]:
        import torch

        if self.format == "onnx":
            values = dict(zip(self.input_names, tensors))
            outputs = self.session.run(None, {name: values[name].detach().cpu().numpy() for name in self.feeds})
            return [torch.from_numpy(o) for o in outputs]
        with torch.no_grad():
            output = self.module(*[t.detach().cpu() for t in tensors])
        return list(output) if isinstance(output, (tuple, list)) else [output]


def exported_module(runtime: _Runtime, spec: ExportSpec) -> Any:
    """The exported runtime as a ``torch.nn.Module`` called like ``spec.module`` (inputs by position or
    name), returning what it returned: the stand-in :attr:`ExportSpec.install` puts into the model."""
    from torch import nn

    class ExportedModule(nn.Module):
        """An exported file standing in for the part of the model it holds (CPU, no gradients)."""

        def forward(self, *args, **kwargs):
            names = list(spec.inputs)
            values = {**dict(zip(names, args)), **kwargs}
            missing = [n for n in names if n not in values]
            if missing:
                raise CrossfuseError(f"the exported model needs inputs {', '.join(missing)}")
            device = next((v.device for v in values.values() if hasattr(v, "device")), None)
            outputs = [o.to(device) if device is not None else o for o in runtime.run([values[n] for n in names])]
            if spec.structure == "dict":
                return dict(zip(spec.output_names, outputs))
            return tuple(outputs) if spec.structure == "tuple" else outputs[0]

    return ExportedModule().eval()


# -- writing the file ----------------------------------------------------------------------------


def write_model(spec: ExportSpec, fmt: str, path: Path, quantize: bool = False) -> dict[str, Any]:
    """Export ``spec`` to ``path``; with ``quantize``, dynamic int8. Returns what was quantised."""
    import torch

    args = tuple(spec.inputs.values())
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about data-dependent branches: parity checks the result
        if fmt == "torchscript":
            return _write_torchscript(spec, args, path, quantize)
        _write_onnx(_flat_module(spec), spec, args, path)
    return {}


def _write_torchscript(spec: ExportSpec, args: tuple, path: Path, quantize: bool) -> dict[str, Any]:
    import torch
    from torch import nn

    flat, info = _flat_module(spec), {}
    if quantize:
        linear = sum(isinstance(m, nn.Linear) for m in flat.modules())
        others = sum(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in flat.modules())
        # Per-channel weight scales, as for ONNX: on the default MiniLM run test macro F1 0.7249 against
        # 0.6645 with per-tensor ones (fp32: 0.7439).
        qconfig = torch.ao.quantization.per_channel_dynamic_qconfig
        flat = torch.ao.quantization.quantize_dynamic(copy.deepcopy(flat), {nn.Linear: qconfig}, dtype=torch.qint8)
        info = {"method": "torch.ao.quantization.quantize_dynamic (qint8 weights per channel, nn.Linear)",
                "quantized": f"{linear} Linear layers", "left_in_fp32": f"{others} convolutions and all other layers"}
    traced = torch.jit.trace(flat, args, check_trace=False, strict=False)
    traced.save(str(path))
    return info


def _write_onnx(flat: Any, spec: ExportSpec, args: tuple, path: Path) -> None:
    import torch

    # dynamo=False: the TorchScript-based exporter handles these models (Hugging Face encoders with
    # dynamic batch and sequence axes, torchvision detectors with NMS) in about a second each on 2
    # cores, from the dynamic_axes we know; torch 2.9's dynamo exporter wants dynamic_shapes, takes
    # several times longer and refused the tokenised text inputs' dynamic axes as given.
    torch.onnx.export(flat, args, str(path), input_names=list(spec.inputs), output_names=spec.output_names,
                      dynamic_axes=spec.dynamic_axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)


def quantize_onnx(source: Path, target: Path) -> dict[str, Any]:
    """Dynamic int8 quantisation of an ONNX file with onnxruntime; returns which nodes it covered."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    before = _op_counts(onnx.load(str(source)))
    # int8 weights keep a transformer's accuracy (uint8 ones cost the real MiniLM 5 points of macro F1
    # here); but onnxruntime's CPU ConvInteger takes only uint8 weights, so a graph with convolutions gets those.
    weights = QuantType.QUInt8 if before.get("Conv") else QuantType.QInt8
    import logging

    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # onnxruntime logs advice on the root logger
    try:
        # Per-channel scales with 7-bit weights: onnxruntime's own advice for CPUs without VNNI (its
        # quantize_dynamic docstring), where 8-bit products can saturate. On the default MiniLM run it
        # kept the test macro F1 at 0.7437 (fp32 0.7439) where per-tensor 8-bit gave 0.6984.
        quantize_dynamic(str(source), str(target), weight_type=weights, per_channel=True, reduce_range=True)
    finally:
        root.setLevel(level)
    after = _op_counts(onnx.load(str(target)))
    candidates = {op: before.get(op, 0) for op in ("MatMul", "Gemm", "Conv", "Gather")}
    quantized = {"MatMul": after.get("MatMulInteger", 0), "Conv": after.get("ConvInteger", 0),
                 "Gather": max(0, before.get("Gather", 0) - after.get("Gather", 0))}
    return {"method": f"onnxruntime.quantization.quantize_dynamic ({'u' if weights == QuantType.QUInt8 else ''}int8 "
                      f"weights, per channel, 7-bit range)",
            "quantized": ", ".join(f"{n} of {candidates[op]} {op}" for op, n in quantized.items()
                                   if candidates[op] and (n or op != "Gather")),  # Gather: only embeddings
            "left_in_fp32": (f"{candidates['Gemm']} Gemm (2-D linear layers: onnxruntime's dynamic quantisation does "
                             f"not cover Gemm)" if candidates["Gemm"] else "")}


def _op_counts(model: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


# -- the descriptor ------------------------------------------------------------------------------


def describe(task: Any, spec: ExportSpec, fmt: str, folder: Path, quantization: dict[str, Any]) -> dict[str, Any]:
    """The preprocessing descriptor written next to the model (tokenizers are saved into ``folder``)."""
    import torch

    def shape(name: str, tensor: Any) -> list[Any]:
        axes = spec.dynamic_axes.get(name, {})
        return [axes.get(i, size) for i, size in enumerate(tensor.shape)]

    inputs = [{"name": name, "dtype": str(t.dtype).replace("torch.", ""), "shape": shape(name, t)}
              for name, t in spec.inputs.items() if isinstance(t, torch.Tensor)]
    labels = getattr(task, "label_names", None)
    return {
        "format": fmt, "file": MODEL_FILES[fmt], "task": task.name, "opset": OPSET if fmt == "onnx" else None,
        "part": spec.part, "inputs": inputs,
        "dynamic_axes": {name: {str(k): v for k, v in axes.items()} for name, axes in spec.dynamic_axes.items()},
        "produced_by": describe_backbones(getattr(task, "backbones", {}), folder),
        "outputs": [{"name": name, "meaning": spec.outputs.get(name, "")} for name in spec.output_names],
        "labels": list(labels) if labels else None,
        "task_state": task.state_dict(),
        "left_out": spec.left_out or "nothing: the file holds the whole model; the task's predict_step turns its "
                                     "outputs into predictions (softmax, thresholds from task_state)",
        "quantization": quantization or None,
    }


def describe_backbones(backbones: dict[str, Any], folder: Path) -> dict[str, Any]:
    """How each backbone's inputs are made: tokenizer (saved into ``folder``), image transform, audio rate."""
    described = {}
    for name, backbone in backbones.items():
        modality = getattr(backbone, "modality", "")
        entry: dict[str, Any] = {"modality": modality}
        if modality == "text" and getattr(backbone, "tokenizer", None) is not None:
            where = "tokenizer" if len(backbones) == 1 else f"tokenizer-{name}"
            backbone.tokenizer.save_pretrained(str(folder / where))
            entry.update(tokenizer=where, max_length=getattr(backbone, "max_length", None), padding="longest",
                         truncation=True, makes=["input_ids", "attention_mask"])
        elif modality == "image":
            entry.update(describe_transform(getattr(backbone, "transform", None)))
            entry["channels"] = getattr(backbone, "in_channels", entry.get("channels"))
        elif modality == "audio":
            entry.update(sample_rate=getattr(backbone, "sample_rate", None),
                         features_kind=getattr(backbone, "features_kind", None),
                         min_samples=getattr(backbone, "min_samples", None),
                         waveforms="mono float32 clips at sample_rate, zero-padded into [batch, samples]; "
                                   "lengths: the valid samples of each")
        described[name] = entry
    return described


def describe_transform(transform: Any) -> dict[str, Any]:
    """Size, crop, mean, std and channels read off a torchvision v2 pipeline, plus its steps as text."""
    steps = list(getattr(transform, "transforms", []) or [])
    found: dict[str, Any] = {"layout": "float32 [channels, height, width], pixels scaled to [0, 1] then normalised"}
    for step in steps:
        kind = type(step).__name__
        if kind == "Resize":
            found["resize"] = list(step.size) if step.size is not None else None
        elif kind == "CenterCrop":
            found["center_crop"] = list(step.size)
        elif kind == "Normalize":
            found["mean"], found["std"] = list(step.mean), list(step.std)
        elif kind == "ToChannels":
            found["channels"] = step.channels
    found["steps"] = [repr(step) for step in steps] or ([repr(transform)] if transform is not None else [])
    return found


# -- parity --------------------------------------------------------------------------------------


def evaluate_with(task: Any, model: Any, samples: Sequence[Any], batch_size: int,
                  amp_dtype: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's own evaluation of ``model`` on ``samples`` (CPU): collected outputs and metrics."""
    import torch

    from .metrics import split_metrics
    from .trainer import Preprocessed, collect_outputs

    dataset = Preprocessed(samples, list(range(len(samples))), task, train=False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, collate_fn=task.collate)
    with torch.no_grad():
        outputs = collect_outputs(task, model, loader, torch.device("cpu"), amp_dtype)
    return outputs, split_metrics(task, outputs, samples)


def max_difference(a: Any, b: Any) -> float:
    """Largest absolute difference between two output structures (inf where their shapes differ)."""
    import numpy as np

    if isinstance(a, dict) and isinstance(b, dict):
        return max((max_difference(a[k], b[k]) for k in a.keys() & b.keys()), default=0.0) \
            if a.keys() == b.keys() else float("inf")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return float("inf")
        return max((max_difference(x, y) for x, y in zip(a, b)), default=0.0)
    if isinstance(a, (str, bool)) or a is None:
        return 0.0 if a == b else float("inf")
    x, y = np.asarray(_numpy(a), dtype=np.float64), np.asarray(_numpy(b), dtype=np.float64)
    if x.shape != y.shape:
        return float("inf")
    return float(np.abs(x - y).max()) if x.size else 0.0


def _numpy(value: Any) -> Any:
    return value.detach().float().numpy() if hasattr(value, "detach") else value


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The numeric scalars of a metrics dict (tables and curves stay out of the side-by-side)."""
    return {k: (float(v) if v is not None else None) for k, v in metrics.items()
            if (isinstance(v, (int, float)) and not isinstance(v, bool)) or v is None}


def latency(call: Callable[[], Any], runs: int = 5, warm_up: int = 2) -> float:
    """Median seconds of ``runs`` timed calls after ``warm_up`` untimed ones (TorchScript optimises on its
    first two calls)."""
    for _ in range(warm_up):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# -- the whole export ----------------------------------------------------------------------------


def check_packages(fmt: str, quantize: str | None) -> None:
    """The optional packages a format needs, with the install line when one is missing."""
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if quantize not in (None, "int8"):
        raise ConfigError(f"--quantize {quantize!r}: expected int8")
    if fmt != "onnx":
        return
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            raise CrossfuseError(f"exporting to ONNX needs the {module} package, which is not installed: "
                                 f"pip install 'crossfuse[export]'") from None


def target_folder(run_path: Path, fmt: str, quantize: str | None, output: str | Path | None,
                  overwrite: bool) -> Path:
    """Where the export goes; refuses an existing export unless ``overwrite``, and any other folder's files."""
    folder = Path(output) if output else run_path / "export" / (fmt + ("-int8" if quantize else ""))
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        if not overwrite:
            raise CrossfuseError(f"{folder} already holds an export; pass --overwrite to replace it, or choose "
                                 f"another --output")
        if not (folder / DESCRIPTOR_FILE).is_file():
            raise CrossfuseError(f"--overwrite refuses to delete {folder}: it is not a crossfuse export folder "
                                 f"(no {DESCRIPTOR_FILE})")
    return folder


def parity_samples(predictor: Any) -> tuple[str, Sequence[Any]]:
    """The run's test split (its validation split when it has none), loaded as the run loaded it."""
    task = type(predictor.task)(copy.deepcopy(predictor.config))  # a fresh task: prepare() must not touch the served one
    data = task.load_data()
    for name, samples in (("test", data.test), ("validation", data.validation)):
        if samples:
            return name, samples
    raise CrossfuseError(f"{predictor.run.path}: the run's data has no test or validation split to check the "
                         f"export on")


def export_run(run_dir: str | Path, fmt: str, *, quantize: str | None = None, output: str | Path | None = None,
               overwrite: bool = False, batch_size: int = 32, log: Callable[[str], None] = lambda _: None
               ) -> ExportResult:
    """Export the run in ``run_dir`` (see the module docstring); ``log`` receives progress lines."""

    from .api import load
    from .runs import RunDir, atomic_write

    check_packages(fmt, quantize)
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    run = RunDir.open(run_dir)
    folder = target_folder(run.path, fmt, quantize, output, overwrite)
    predictor = load(run.path, device="cpu")
    task, model = predictor.task, predictor.model
    split, samples = parity_samples(predictor)
    example = task.collate([task.preprocess(samples[i], train=False) for i in range(min(batch_size, len(samples)))])
    spec = task.export_spec(model, example)
    log(f"exporting {spec.part} of {run.path} ({task.name}) to {fmt}" + (" with int8 weights" if quantize else ""))
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        model_file = staging / MODEL_FILES[fmt]
        # PyTorch first: once traced, a Hugging Face model runs its eager forward far slower in this process.
        reference = _reference(task, model, predictor.amp_dtype, spec, samples, batch_size)
        variants = _write_variants(spec, fmt, quantize, staging, model_file)
        log(f"checking it against PyTorch on the {split} split ({len(samples)} samples)")
        parity = _parity(task, model, reference, spec, fmt, variants, split, samples, batch_size)
        descriptor = describe(task, spec, fmt, staging, variants[-1][2])
        atomic_write(staging / DESCRIPTOR_FILE, json.dumps(descriptor, indent=2, default=str) + "\n")
        atomic_write(staging / PARITY_FILE, json.dumps(parity, indent=2, default=str) + "\n")
        for _, path, _ in variants:
            if path != model_file:
                path.unlink(missing_ok=True)  # the fp32 file of an int8 export was only for the comparison
        _move_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(folder, folder / MODEL_FILES[fmt], descriptor, parity)


def _write_variants(spec: ExportSpec, fmt: str, quantize: str | None, staging: Path,
                    model_file: Path) -> list[tuple[str, Path, dict[str, Any]]]:
    """``[(name, file, quantisation info)]``: fp32, and int8 when asked (then ``model_file`` holds int8)."""
    if not quantize:
        write_model(spec, fmt, model_file)
        return [("fp32", model_file, {})]
    fp32 = staging / f"fp32-{MODEL_FILES[fmt]}"
    write_model(spec, fmt, fp32)
    info = quantize_onnx(fp32, model_file) if fmt == "onnx" else write_model(spec, fmt, model_file, quantize=True)
    return [("fp32", fp32, {}), ("int8", model_file, info)]


def _reference(task: Any, model: Any, amp_dtype: Any, spec: ExportSpec, samples: Sequence[Any],
               batch_size: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """PyTorch's outputs on the split, and its row of the table (metrics, latency on the example batch)."""
    import torch

    outputs, metrics = evaluate_with(task, model, samples, batch_size, amp_dtype)
    args, flat = tuple(spec.inputs.values()), _flat_module(spec)
    with torch.no_grad():
        row = {"file_mb": None, "latency_s": latency(lambda: flat(*args)), "metrics": scalar_metrics(metrics)}
    return outputs, row


def _parity(task: Any, model: Any, pytorch: tuple[dict[str, Any], dict[str, Any]], spec: ExportSpec, fmt: str,
            variants: list[tuple[str, Path, dict[str, Any]]], split: str, samples: Sequence[Any],
            batch_size: int) -> dict[str, Any]:
    import torch

    reference, row = pytorch
    args = tuple(spec.inputs.values())
    rows, differences = {"pytorch": row}, {}
    for name, path, info in variants:
        runtime = _Runtime(path, fmt, list(spec.inputs))
        stand_in = exported_module(runtime, spec)
        outputs, exported_metrics = evaluate_with(task, spec.install(copy.deepcopy(model), stand_in), samples,
                                                  batch_size)
        differences[name] = {key: max_difference(reference[key], outputs.get(key)) for key in reference}
        rows[name] = {"file_mb": round(path.stat().st_size / 2**20, 3),
                      "latency_s": latency(lambda runtime=runtime: runtime.run(args)),
                      "metrics": scalar_metrics(exported_metrics),
                      "max_abs_diff": max(differences[name].values(), default=0.0),
                      "max_abs_diff_by_output": differences[name], **({"quantization": info} if info else {})}
    return {"task": task.name, "format": fmt, "part": spec.part, "split": split, "samples": len(samples),
            "batch_size": min(batch_size, len(samples)), "main_metric": task.main_metric,
            "latency_inputs": {name: list(t.shape) for name, t in spec.inputs.items()},
            "runtime": "onnxruntime CPUExecutionProvider" if fmt == "onnx" else "torch.jit.load (CPU)",
            "threads": torch.get_num_threads(), "results": rows}


def _move_into_place(staging: Path, folder: Path) -> None:
    """Rename the finished staging folder to ``folder``, replacing an old export only once the new one is whole."""
    old = None
    if folder.exists():
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        os.replace(folder, old)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def summary_lines(result: ExportResult) -> list[str]:
    """What ``crossfuse export`` prints: where, what part, the side-by-side figures."""
    parity, main = result.parity, result.parity["main_metric"]
    lines = [f"export: {result.model_file}", f"part: {parity['part']}",
             f"left out: {result.descriptor['left_out']}",
             f"parity on the {parity['split']} split ({parity['samples']} samples, batch {parity['batch_size']}, "
             f"{parity['runtime']}):",
             f"  {'':8} {main:>12} {'max |diff|':>11} {'file MB':>9} {'latency/call':>14}  "
             f"(median of 5 after 2 warm-ups, on inputs "
             + ", ".join(f"{k} {v}" for k, v in parity["latency_inputs"].items()) + ")"]
    for name, row in parity["results"].items():
        value = row["metrics"].get(main)
        diff = row.get("max_abs_diff")
        lines.append(f"  {name:8} {_fmt(value, 12)} {_fmt(diff, 11, 'e') if diff is not None else '-':>11} "
                     f"{_fmt(row['file_mb'], 9, '.2f') if row['file_mb'] is not None else '-':>9} "
                     f"{row['latency_s'] * 1000:>11.1f} ms")
        if row.get("quantization"):
            q = row["quantization"]
            lines.append(f"           int8: {q['method']}; quantised {q['quantized'] or 'nothing'}"
                         + (f"; fp32: {q['left_in_fp32']}" if q.get("left_in_fp32") else ""))
    fp32 = parity["results"].get("fp32", {})
    if fp32.get("max_abs_diff", 0) > FP32_TOLERANCE:
        lines.append(f"warning: the fp32 export differs from PyTorch by up to {fp32['max_abs_diff']:.3g} "
                     f"(more than {FP32_TOLERANCE:g}); see {PARITY_FILE}")
    lines.append(f"files: {', '.join(sorted(p.name for p in result.folder.iterdir()))}")
    return lines


def _fmt(value: Any, width: int, kind: str = ".4f") -> str:
    if value is None:
        return f"{'-':>{width}}"
    if kind == "e":
        return f"{value:>{width}.2e}"
    return f"{value:>{width}{kind}}"
