"""crossfuse from Python: list tasks, train, predict, evaluate on another file, build a backbone, distil, export.

    python examples/python_api.py                       # the real default (all-MiniLM-L6-v2)
    python examples/python_api.py --backbone tiny-bert  # seconds, random weights (what the tests run)
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

import crossfuse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="all-minilm-l6-v2")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--output", default=None, help="keep the run here (default: a temporary folder, removed)")
    args = parser.parse_args()
    if args.output:
        tour(Path(args.output) / "finance", args.backbone, args.epochs)
        return
    with tempfile.TemporaryDirectory(prefix="crossfuse-example-") as folder:
        tour(Path(folder) / "finance", args.backbone, args.epochs)


def tour(output: Path, backbone_name: str, epochs: int) -> None:
    """List, train, predict, evaluate, build a backbone, distil and export, writing the runs beside ``output``."""

    # 1. What is installed: tasks and backbones come from plugins.
    print("tasks:", [task["name"] for task in crossfuse.list_tasks()])
    print("text backbones:", [b["name"] for b in crossfuse.list_backbones("text")])

    # 2. Train and evaluate; the report holds every split's metrics and the baseline's.
    result = crossfuse.run("finance-sentiment", backbone=backbone_name, epochs=epochs, output=str(output),
                           progress=False)
    test = result.report["splits"]["test"]
    baseline = result.report["baseline"]["splits"]["test"]
    print(f"test macro-F1 {test['macro_f1']:.3f} (TF-IDF baseline {baseline['macro_f1']:.3f}) in {result.run_dir}")

    # 3. Load the trained run and predict.
    model = crossfuse.load(result.run_dir)
    for prediction in model.predict(["Quarterly profit beat every analyst estimate",
                                     "The lender breached its loan covenants"]):
        print(prediction["label"], prediction["probabilities"])

    # 4. Score it on a file of your own (CSV/TSV/JSONL with text,label columns, or PhraseBank .txt).
    extra = output.parent / "extra.csv"
    with open(extra, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("text", "label"), ("Net sales doubled year on year", "positive"),
                                      ("The board will meet on 3 March", "neutral"),
                                      ("Credit losses rose sharply", "negative")])
    metrics = crossfuse.evaluate(result.run_dir, data=extra)
    print(f"extra.csv accuracy {metrics['accuracy']:.3f}, confusion matrix {metrics['confusion_matrix']}")

    # 5. Backbones are usable on their own.
    backbone = crossfuse.get_backbone(backbone_name)
    features = backbone(**backbone.tokenize(["Rates were left unchanged"]))
    print("feature vector:", tuple(features.shape))

    # 6. Distil the run into a student: here the first 3 layers of the same checkpoint (MiniLM has 6).
    layers = ["backbone.layers=3"] if backbone_name == "all-minilm-l6-v2" else []
    student = crossfuse.run("finance-sentiment", backbone=backbone_name, epochs=epochs, distill_from=result.run_dir,
                            output=str(output.parent / "student"), overrides=layers, progress=False)
    side = student.report["distillation"]
    print(f"student {side['student']['splits']['test']:.3f} vs teacher {side['teacher']['splits']['test']:.3f} "
          f"test macro-F1, {side['speedup']}x the speed")

    # 7. Export to ONNX with int8 weights, checked against PyTorch on the test split (the export extra).
    from crossfuse import api
    from crossfuse.errors import CrossfuseError

    try:
        exported = api.export(result.run_dir, "onnx", quantize="int8")
    except CrossfuseError as missing:  # onnx / onnxruntime not installed
        print(f"export skipped: {missing}")
        return
    rows = exported.parity["results"]
    print(f"{exported.model_file}: int8 macro-F1 {rows['int8']['metrics']['macro_f1']:.3f}, "
          f"{rows['int8']['file_mb']} MB against {rows['fp32']['file_mb']} MB in fp32")


if __name__ == "__main__":
    main()
