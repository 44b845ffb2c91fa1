"""People's data in the memory: what is stored about a user or a session, reading it out, changing it,
erasing it with proof, and the audit trail of all of it.

- ``scope``: which tables hold a user's or a session's data, and how each links to them (one source for
  export, erasure and its proof);
- ``audit``: the audit trail (``record`` is the function other modules call);
- ``memories``: list, show, update and delete single memories; store a conversation memory;
- ``export``: a user's rows as JSON Lines, streamed;
- ``erasure``: forget a user or a session in bounded batches, prove it, leave a receipt;
- ``sessions``: session activity and state (active / idle / closed), closing sessions;
- ``retention``: retention of what grows (semantic memories, logs, relevance rows);
- ``stats``: what is in the memory, at a glance.
"""
