"""Migrating a running cluster between IPAM modes, step by step, as an operator would.

>>> from ipam_core.scenario import load_scenario
>>> from ipam_core.migration import format_timeline, plan_migration, run_migration
>>> scenario = load_scenario("scenarios/seed-lab.yaml")                  # doctest: +SKIP
>>> result = run_migration(scenario)                                      # doctest: +SKIP
>>> result.summary["conflicts"], result.summary["end_mode"]               # doctest: +SKIP
(0, 'cluster-pool')
>>> print(format_timeline(result))                                        # doctest: +SKIP
>>> plan_migration(scenario, batch=1).rows[0].strategy                    # doctest: +SKIP
'all-at-once'

Modules: :mod:`~ipam_core.migration.steps` (the ``steps:`` list), :mod:`~.commands` (kubectl /
helm command lines), :mod:`~.helm` (release values), :mod:`~.objects` (applied manifests),
:mod:`~.cluster` and :mod:`~.operator` (simulated objects), :mod:`~.engine` (the event loop),
:mod:`~.report` (Arrow tables), :mod:`~.timeline` (readable text), :mod:`~.plan` (strategies).
See docs/migration.md.
"""

from ipam_core.migration.engine import Conflict, MigrationEngine, MigrationResult, run_migration
from ipam_core.migration.plan import Plan, PlanRow, format_plan, plan_migration, write_plan_csv
from ipam_core.migration.report import report_tables, write_report
from ipam_core.migration.settings import MigrationSettings, MigrationTiming, read_settings
from ipam_core.migration.steps import Step, parse_steps
from ipam_core.migration.timeline import format_timeline

__all__ = ["Conflict", "MigrationEngine", "MigrationResult", "MigrationSettings", "MigrationTiming", "Plan",
           "PlanRow", "Step", "format_plan", "format_timeline", "parse_steps", "plan_migration", "read_settings",
           "report_tables", "run_migration", "write_plan_csv", "write_report"]
