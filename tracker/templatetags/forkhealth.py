"""Template filters of the dashboard's pages."""

from django import template

from tracker.models import FixState

register = template.Library()


@register.filter
def fix_label(status: str) -> str:
    """A fix status in words ("fixed by backport"), for the status badges."""
    try:
        return FixState(status).label
    except ValueError:
        return status


SHORT = {"base": "base", "backport": "backport", "will_not_fix": "won't fix"}


@register.filter
def fix_short(status: str) -> str:
    """A fix status in one or two words, for the matrix cells (`fix_label` in their title)."""
    return SHORT.get(status) or fix_label(status)
