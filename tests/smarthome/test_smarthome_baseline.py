"""The log-mel + logistic-regression reference."""

from __future__ import annotations

import numpy as np
import torch

from crossfuse_smarthome.baseline import logmel_baseline, logmel_summary

from voice_files import tone


def clips(pitches, offsets):
    """One-second clips holding a 0.3 s tone of each pitch at each offset (seconds)."""
    rows = []
    for pitch in pitches:
        for offset in offsets:
            clip = np.zeros(16000, np.float32)
            start = int(offset * 16000)
            clip[start: start + 4800] = tone(pitch, 0.3)
            rows.append(clip)
    return torch.from_numpy(np.stack(rows))


def test_summaries_do_not_depend_on_where_the_word_sits():
    features = logmel_summary(clips([400.0], [0.1, 0.6]), 16000)
    assert features.shape == (2, 40 * 12)
    assert np.abs(features[0] - features[1]).max() < 0.5


def test_it_separates_what_a_linear_model_can_and_reports_per_split():
    train = logmel_summary(clips([300.0, 1200.0], [0.05, 0.2, 0.35, 0.5, 0.65]), 16000)
    test = logmel_summary(clips([300.0, 1200.0], [0.1, 0.4]), 16000)
    result = logmel_baseline((train, [0] * 5 + [1] * 5), {"test": (test, [0, 0, 1, 1], ["a", "b", "a", "b"])},
                             ["low", "high"])
    assert result["name"] == "logmel-logreg"
    assert result["splits"]["test"]["accuracy"] == 1.0
    assert set(result["splits"]["test"]["accuracy_per_voice"]) == {"a", "b"}
