"""The command -> smart-home action table."""

from __future__ import annotations

import pytest

from crossfuse.errors import ConfigError
from crossfuse_smarthome.actions import DEFAULT_ACTIONS, action_for, check_actions
from crossfuse_smarthome.config import V2_12_WORDS, VoiceDataConfig
from crossfuse_smarthome.demo import DEMO_COMMANDS


def test_commands_map_to_their_device_and_action():
    assert action_for("lights_on", DEFAULT_ACTIONS) == {"device": "lights", "action": "on"}
    assert action_for("cool", DEFAULT_ACTIONS) == {"device": "thermostat", "action": "cool"}
    assert action_for("off", DEFAULT_ACTIONS) == {"action": "off"}


def test_unknown_words_and_silence_never_act():
    assert action_for("_unknown_", DEFAULT_ACTIONS) is None
    assert action_for("_silence_", DEFAULT_ACTIONS) is None
    assert action_for("marvin", DEFAULT_ACTIONS) is None  # a command the table does not list


def test_a_configured_table_replaces_the_default():
    table = {"go": {"device": "garage", "action": "open"}}
    assert action_for("go", table) == {"device": "garage", "action": "open"}
    assert action_for("lights_on", table) is None
    returned = action_for("go", table)
    returned["action"] = "close"
    assert table["go"]["action"] == "open"  # callers get a copy


def test_the_default_table_covers_the_demo_and_the_v2_12_words():
    assert check_actions(VoiceDataConfig().actions, DEMO_COMMANDS) == []
    assert check_actions(DEFAULT_ACTIONS, V2_12_WORDS) == []
    assert check_actions({"on": {"action": "on"}}, ["on", "off"]) == ["off"]


@pytest.mark.parametrize("table, message", [
    ({"_unknown_": {"action": "beep"}}, "never triggers an action"),
    ({"on": {}}, "empty action"),
])
def test_bad_tables_are_config_errors(table, message):
    with pytest.raises(ConfigError, match=message):
        check_actions(table, ["on"])
