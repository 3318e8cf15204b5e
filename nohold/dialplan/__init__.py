"""Dialplan files an admin `#include`s from extensions.conf (shipped as package data)."""
from pathlib import Path

DIALPLAN_DIR = Path(__file__).resolve().parent
NOHOLD_CONF = DIALPLAN_DIR / "nohold.conf"
