"""memcli: operate the Postgres databases that hold AI agents' memory."""

__version__ = "0.1.0"
