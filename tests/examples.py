"""How many examples the heaviest property tests draw.

`examples(n)` is `n` in `make test`, and `TAPELOOP_EXAMPLES_SCALE` times `n` where it is
set: `make soak` runs these tests again at ten times their examples, so `make test`
stays within its time on two cores while the long search still runs somewhere."""

from __future__ import annotations

import os

SCALE = float(os.environ.get("TAPELOOP_EXAMPLES_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, round(n * SCALE))
