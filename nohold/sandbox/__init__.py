"""A real Asterisk 22 for tests, the demo and `nohold sandbox up|down|status`.

ensure_rootfs() provides the Asterisk binary (a cached debootstrapped sid root,
or the host's own install), start_sandbox() runs one isolated instance of it.
"""

from nohold.sandbox.instance import Sandbox, free_port, reap_orphans, start_sandbox
from nohold.sandbox.rootfs import SandboxError, ensure_rootfs

__all__ = ["Sandbox", "SandboxError", "ensure_rootfs", "free_port", "reap_orphans", "start_sandbox"]
