"""What a recognised command does in the house: a table from command to a smart-home action.

An action is a small mapping of strings, e.g. ``{"device": "lights", "action": "on"}``; what the
keys mean is up to the home controller that receives it. ``_unknown_`` and ``_silence_`` never
act, and neither does a command the table does not list. No torch here.

>>> action_for("lights_on", DEFAULT_ACTIONS)
{'device': 'lights', 'action': 'on'}
>>> action_for("_unknown_", DEFAULT_ACTIONS) is None
True
"""

from __future__ import annotations

from typing import Mapping, Sequence

from crossfuse.errors import ConfigError

SILENCE = "_silence_"
UNKNOWN = "_unknown_"

# Covers the demo's commands and the v2-12 words, so either word list works without editing the
# table. A bare modifier ("on", "up") names no device: the controller applies it to the device
# addressed last.
DEFAULT_ACTIONS: dict[str, dict[str, str]] = {
    "lights_on": {"device": "lights", "action": "on"},
    "lights_off": {"device": "lights", "action": "off"},
    "music_on": {"device": "speaker", "action": "play"},
    "music_off": {"device": "speaker", "action": "stop"},
    "lights": {"device": "lights", "action": "toggle"},
    "music": {"device": "speaker", "action": "toggle"},
    "heat": {"device": "thermostat", "action": "heat"},
    "cool": {"device": "thermostat", "action": "cool"},
    "on": {"action": "on"},
    "off": {"action": "off"},
    "up": {"action": "increase"},
    "down": {"action": "decrease"},
    "stop": {"action": "stop"},
    "go": {"action": "start"},
    "yes": {"action": "confirm"},
    "no": {"action": "cancel"},
    "left": {"action": "previous"},
    "right": {"action": "next"},
}


def action_for(command: str, table: Mapping[str, Mapping[str, str]]) -> dict[str, str] | None:
    """The action ``command`` triggers, or ``None`` (unknown word, silence, or not in the table)."""
    if command in (SILENCE, UNKNOWN):
        return None
    action = table.get(command)
    return dict(action) if action is not None else None


def check_actions(table: Mapping[str, Mapping[str, str]], commands: Sequence[str],
                  key: str = "data.actions") -> list[str]:
    """Validate ``table`` against the run's ``commands``; return the commands it gives no action.

    Entries for words the run does not recognise are allowed (one table serves several word
    lists); an entry for ``_unknown_`` or ``_silence_``, or an empty action, is a ConfigError.
    """
    for command, action in table.items():
        if command in (SILENCE, UNKNOWN):
            raise ConfigError(f"{key}.{command}: {command} never triggers an action; remove the entry")
        if not action:
            raise ConfigError(f"{key}.{command}: empty action; give e.g. {{device: lights, action: on}} "
                              f"or remove the entry")
    return [command for command in commands if command not in table]
