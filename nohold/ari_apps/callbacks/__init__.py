"""Callbacks: the offer in the queue, the placeholder that keeps the caller's place,
and the agent-first dial (docs/architecture.md)."""
