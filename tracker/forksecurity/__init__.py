"""Fork security: which upstream security fixes each fork release and branch carries, how
(base or backport, and by which method), and since when. `rules` is the pure core, `gitread`
the git reads, `upstream` the upstream's fixes as computation needs them, `store` the
releases, statuses and triage in the database.

The names below are loaded on first use, so that pure modules can import `rules` (the patch
set matches upstreamed patches with it) without loading the models through `store`."""

from importlib import import_module

_WHERE = {
    "SecurityStats": "store",
    "apply_triage": "store",
    "fork_gap_report": "store",
    "record_security_snapshot": "store",
    "refresh_patch_levels": "store",
    "triage": "store",
    "update_fork_security": "store",
    "update_upstream_security": "store",
    "UpstreamFacts": "upstream",
}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)


__all__ = [
    "SecurityStats",
    "UpstreamFacts",
    "apply_triage",
    "fork_gap_report",
    "record_security_snapshot",
    "refresh_patch_levels",
    "triage",
    "update_fork_security",
    "update_upstream_security",
]
