"""Every option of the project's management commands says what it is and its default."""

import argparse

import pytest
from django.core.management import get_commands, load_command_class

from tracker.management.base import DefaultsHelpFormatter, TrackerCommand

OURS = sorted(name for name, app in get_commands().items() if app == "tracker")
# Django's own options, the same in every command.
COMMON = {"help", "version", "verbosity", "settings", "pythonpath", "traceback", "no_color"}
COMMON |= {"force_color", "skip_checks"}


def test_the_project_has_its_commands():
    assert {"add_upstream", "add_fork", "sync_fork", "demo", "run_scheduler"} <= set(OURS)


@pytest.mark.parametrize("name", OURS)
def test_every_option_has_help_and_shows_its_default(name):
    command = load_command_class("tracker", name)
    assert isinstance(command, TrackerCommand)
    parser = command.create_parser("manage.py", name)
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if action.dest in COMMON:
            continue
        assert action.help, f"{name} {action.dest}: no help text"
        if (
            action.option_strings
            and not action.required
            and action.default
            not in (
                None,
                False,
                argparse.SUPPRESS,
            )
        ):
            shown = action.default if action.default not in ("", []) else "none"
            assert f"default: {shown}" in text, f"{name} {action.dest}: default not shown"


def test_a_default_with_a_percent_sign_is_shown_as_it_is():
    parser = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    parser.add_argument("--pattern", default="100%", help="a pattern")
    assert "(default: 100%)" in parser.format_help()
