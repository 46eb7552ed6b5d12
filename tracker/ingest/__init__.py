"""Ingestion: facts from git and upstream sources written into the database.

One module per source; `history` streams upstream commits from ``git log`` into
`UpstreamCommit`, `CommitBug` and `IngestCursor`, incrementally and idempotently.
"""
