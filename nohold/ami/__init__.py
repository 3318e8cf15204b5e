"""The AMI side of nohold: one long-lived manager connection and what is built on it.

Wiring (`nohold run`): `client = AmiClient(settings)`, `monitor = QueueMonitor(client)`,
`await client.start()`; on shutdown `await monitor.close()`, `await client.close()`.
`nohold check`: `report = await check_ami(settings)`.
"""

from nohold.ami.check import AmiCheckReport, check_ami
from nohold.ami.client import AmiAuthError, AmiClient, AmiError, AmiErrorResponse, AmiTimeout
from nohold.ami.queues import QueueMonitor
from nohold.ami.settings import AmiSettings, parse_ami_settings

__all__ = [
    "AmiAuthError",
    "AmiCheckReport",
    "AmiClient",
    "AmiError",
    "AmiErrorResponse",
    "AmiSettings",
    "AmiTimeout",
    "QueueMonitor",
    "check_ami",
    "parse_ami_settings",
]
