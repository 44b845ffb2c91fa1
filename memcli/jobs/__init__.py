"""Maintenance jobs: cleanup, consolidation, index upkeep, their locks, run log and schedule.

Each job is a library function ``(conn, options) -> result dataclass``; ``maintain.run_steps`` runs them as
steps under the job's advisory lock and records every step in ``system_maintenance_log``.
"""
