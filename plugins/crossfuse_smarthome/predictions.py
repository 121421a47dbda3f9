"""What ``crossfuse predict`` gives for a voice-command run: a clip's command, or a stream's commands.

A clip (``predict RUN clip.wav``)::

    {"input": "clip.wav", "label": "lights_on", "probability": 0.97,
     "action": {"device": "lights", "action": "on"}, "top": {"lights_on": 0.97, "lights": 0.02, ...}}

A long recording (``predict RUN --stream long.wav``)::

    {"input": "long.wav", "seconds": 42.0, "threshold": 0.83,
     "commands": [{"command": "music_on", "start": 3.2, "end": 4.2, "score": 0.91,
                   "action": {"device": "speaker", "action": "play"}}, ...]}

``_unknown_`` and ``_silence_`` have no action (``null``). No torch here.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from .actions import action_for
from .streaming import Detection


def clip_prediction(item: str, probabilities: Sequence[float], labels: Sequence[str],
                    actions: Mapping[str, Mapping[str, str]], top: int = 3) -> dict[str, Any]:
    """One clip's prediction: the most probable class, its probability, its action and the ``top`` classes."""
    ranked = sorted(range(len(labels)), key=lambda i: -probabilities[i])
    best = ranked[0]
    return {"input": item, "label": labels[best], "probability": round(float(probabilities[best]), 4),
            "action": action_for(labels[best], actions),
            "top": {labels[i]: round(float(probabilities[i]), 4) for i in ranked[: max(1, top)]}}


def stream_prediction(item: str, seconds: float, detections: Sequence[Detection], threshold: float,
                      actions: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """A recording's prediction: every command heard, in time order, with its action."""
    return {"input": item, "seconds": round(seconds, 3), "threshold": threshold,
            "commands": [{"command": d.command, "start": d.start, "end": d.end, "score": d.score,
                          "action": action_for(d.command, actions)} for d in detections]}


def describe(prediction: dict[str, Any]) -> str:
    """Terminal lines: ``command  probability  action  file`` for a clip; for a stream one line per
    command heard (``start s  command  score  action  file``), or a line saying none was."""
    if "commands" in prediction:
        if not prediction["commands"]:
            return f"(no command heard in {prediction['seconds']:.1f} s)\t{prediction['input']}"
        return "\n".join(f"{c['start']:8.2f} s\t{c['command']}\t{c['score']:.3f}\t{_action(c['action'])}\t"
                         f"{prediction['input']}" for c in prediction["commands"])
    line = f"{prediction['label']}\t{prediction['probability']:.3f}\t{_action(prediction['action'])}\t{prediction['input']}"
    if "saliency" in prediction:
        line += f"\tsaliency: {prediction['saliency']}"
    return line


def _action(action: Mapping[str, str] | None) -> str:
    return json.dumps(action, ensure_ascii=False) if action is not None else "(no action)"
