"""Generator of Chromium-shaped git history with ground truth (tests, demo, benchmarks)."""

from tracker.generator.spec import GitForkSpec, PatchSeriesForkSpec, WorldSpec, standard_world
from tracker.generator.world import build_world

__all__ = ["GitForkSpec", "PatchSeriesForkSpec", "WorldSpec", "build_world", "standard_world"]
