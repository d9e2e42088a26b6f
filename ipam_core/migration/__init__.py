"""Migrating a running cluster between IPAM modes, step by step, as an operator would.

>>> from ipam_core.scenario import load_scenario
>>> from ipam_core.migration import run_migration
>>> result = run_migration(load_scenario("scenarios/seed-lab.yaml"))   # doctest: +SKIP
>>> result.summary["conflicts"]                                           # doctest: +SKIP
0

Modules: :mod:`~ipam_core.migration.steps` (the ``steps:`` list), :mod:`~.commands` (kubectl /
helm command lines), :mod:`~.helm` (release values), :mod:`~.objects` (applied manifests),
:mod:`~.cluster` and :mod:`~.operator` (simulated objects), :mod:`~.engine` (the event loop),
:mod:`~.report` (Arrow tables), :mod:`~.timeline` (readable text), :mod:`~.plan` (strategies).
See docs/migration.md.
"""

from ipam_core.migration.engine import Conflict, MigrationEngine, MigrationResult, run_migration
from ipam_core.migration.settings import MigrationSettings, MigrationTiming, read_settings
from ipam_core.migration.steps import Step, parse_steps

__all__ = ["Conflict", "MigrationEngine", "MigrationResult", "MigrationSettings", "MigrationTiming", "Step",
           "parse_steps", "read_settings", "run_migration"]
