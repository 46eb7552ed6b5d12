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
