"""What ``crossfuse predict`` says about one image: each finding with its probability, the saved
threshold and whether it passes; and the lines the terminal shows for it.

Binary and multi-label outputs are independent probabilities, each compared with the threshold
chosen on validation (``task_state.json``); a multi-class prediction is the most likely class.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from .labels import LabelSpace
from .metrics import DEFAULT_THRESHOLD


def findings(space: LabelSpace, probabilities: Sequence[float],
             thresholds: Optional[Sequence[Optional[float]]]) -> list[dict[str, Any]]:
    """One entry per model output, in output order: ``name``, ``probability``, ``threshold`` (None for
    multi-class) and ``positive`` (passes its threshold, or is the arg-max class)."""
    values = [float(p) for p in probabilities]
    if space.kind == "multiclass":
        best = max(range(len(values)), key=values.__getitem__)
        return [{"name": name, "probability": round(p, 4), "threshold": None, "positive": i == best}
                for i, (name, p) in enumerate(zip(space.outputs, values))]
    cuts = [DEFAULT_THRESHOLD if not thresholds or t is None else float(t) for t in (thresholds or [None] * len(values))]
    return [{"name": name, "probability": round(p, 4), "threshold": round(t, 4), "positive": p >= t}
            for name, p, t in zip(space.outputs, values, cuts)]


def prediction(space: LabelSpace, item: str, probabilities: Sequence[float],
               thresholds: Optional[Sequence[Optional[float]]]) -> dict[str, Any]:
    """``{"input", "label", "findings"}``: ``label`` is the predicted class (binary: the positive class
    when it passes its threshold, else the negative one; multi-label: the positive findings joined
    by ``, ``, or ``no finding``)."""
    rows = findings(space, probabilities, thresholds)
    positive = [row["name"] for row in rows if row["positive"]]
    if space.kind == "binary":
        label = space.classes[1] if positive else space.classes[0]
    elif space.kind == "multiclass":
        label = positive[0]
    else:
        label = ", ".join(positive) or "no finding"
    return {"input": item, "label": label, "findings": rows}


def describe(prediction: dict[str, Any]) -> str:
    """``INPUT: LABEL`` then one line per finding (most likely first), then any heat maps and note."""
    case = f" ({prediction['case']})" if prediction.get("case") else ""
    lines = [f"{prediction['input']}{case}: {prediction['label']}"]
    if prediction.get("note") is not None or "inputs" in prediction:
        lines.append(f"  note: {prediction.get('note') or '(none: read from the image alone)'}")
    width = max(len(row["name"]) for row in prediction["findings"])
    for row in sorted(prediction["findings"], key=lambda r: -r["probability"]):
        if row["threshold"] is None:
            verdict = "predicted" if row["positive"] else ""
            lines.append(f"  {row['name']:<{width}}  {row['probability']:.3f}  {verdict}".rstrip())
        else:
            sign, verdict = (">=", "POSITIVE") if row["positive"] else ("< ", "negative")
            lines.append(f"  {row['name']:<{width}}  {row['probability']:.3f} {sign} {row['threshold']:.3f}  {verdict}")
    for name, path in (prediction.get("heatmaps") or {}).items():
        lines.append(f"  heat map ({name}): {path}")
    if prediction.get("note_attributions"):
        top = sorted(prediction["note_attributions"], key=lambda pair: -abs(pair[1]))[:5]
        lines.append("  note words that drove it: " + ", ".join(f"{token} {score:+.3f}" for token, score in top))
    return "\n".join(lines)
