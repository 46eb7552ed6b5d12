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


@register.filter
def http_url(value: str) -> str:
    """`value` when it is an http(s) URL, else "": links to URLs that came from upstream
    sources, which autoescaping alone would not stop from being ``javascript:`` links."""
    return (
        value
        if isinstance(value, str) and value.lower().startswith(("https://", "http://"))
        else ""
    )
