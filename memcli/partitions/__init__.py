"""Time-partitioned layout of the tables that only grow: conversation memory and the two logs.

- ``layout``: which tables may be partitioned, by which column, and how partitions are named and bounded;
- ``twin``: builds a table's twin in the other layout (same columns, checks, indexes, triggers, row
  security, grants) and swaps it in for the original;
- ``upkeep``: lists partitions, creates them ahead, drops those whose rows have all expired;
- ``convert``: converts a plain table online (copy in batches, catch up, swap under a short lock).
"""
