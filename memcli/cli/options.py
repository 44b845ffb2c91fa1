"""Options that several command groups declare alike; a group with its own wording declares its own."""

from __future__ import annotations

from typing import Annotated

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (needed off a terminal).")]
PauseOpt = Annotated[
    float, typer.Option("--pause", min=0.0, help="Seconds to rest between batches on a busy server.")
]
