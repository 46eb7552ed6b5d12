"""The base of the project's management commands: `--help` shows every option's default."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, DjangoHelpFormatter


class DefaultsHelpFormatter(DjangoHelpFormatter):
    """Appends "(default: X)" to each option's help; "none" for an empty default. Flags
    (store_true), required options and positionals say nothing more."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or action.required
            or action.default in (None, False, argparse.SUPPRESS)
            or "default:" in text
        ):
            return text
        shown = action.default if action.default not in ("", []) else "none"
        return f"{text} (default: {str(shown).replace('%', '%%')})".strip()


class TrackerCommand(BaseCommand):
    def create_parser(self, prog_name: str, subcommand: str, **kwargs) -> argparse.ArgumentParser:
        kwargs.setdefault("formatter_class", DefaultsHelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)
