"""The data config is made of types the core's config builder understands."""

from __future__ import annotations

import yaml

from crossfuse.config import build
from crossfuse_smarthome.config import VoiceDataConfig

SECTION = """
words: ["on", "off", lights, music]
unknown_fraction: null
augment: {noise: false, snr_db: [5, 15], freq_masks: 1}
stream: {hop_s: 0.05, threshold: 0.8}
actions:
  lights: {device: lamp, action: toggle}
  "on": {action: "on"}
"""


def test_a_yaml_data_section_builds_the_config():
    config = build(VoiceDataConfig, yaml.safe_load(SECTION), prefix="data.")
    assert config.words == ["on", "off", "lights", "music"] and config.unknown_fraction is None
    assert (config.augment.noise, config.augment.snr_db, config.augment.freq_masks) == (False, [5.0, 15.0], 1)
    assert config.augment.spec_augment and config.stream.window_s is None and config.stream.hop_s == 0.05
    assert config.actions == {"lights": {"device": "lamp", "action": "toggle"}, "on": {"action": "on"}}


def test_defaults_are_the_v2_12_recipe_with_the_demo_left_to_the_source():
    config = VoiceDataConfig()
    assert (config.format, config.train, config.words, config.sample_rate, config.clip_seconds) == \
        ("auto", None, None, None, 1.0)
    assert (config.silence_fraction, config.unknown_fraction) == (0.1, 0.1)
    assert config.actions["lights_on"] == {"device": "lights", "action": "on"}
