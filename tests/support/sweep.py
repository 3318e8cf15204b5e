"""An empty directory for the after-hours sweep of a test that is not about it.

The session's sandbox Asterisk keeps every test's voice messages in one recording
directory, and each test's nohold has a database of its own: a sweep reading that
directory would rightly make tickets of the other tests' messages. Where the sandbox
runs chrooted nohold cannot see the directory anyway; where it runs on the host's
root it could, so such tests give the sweep a directory of their own."""

from __future__ import annotations

import uuid
from typing import Any


def empty_sweep_dir(asterisk: Any) -> str:
    path = asterisk.run_dir / "sweep-nothing" / uuid.uuid4().hex[:8]
    path.mkdir(parents=True)
    return str(path)
