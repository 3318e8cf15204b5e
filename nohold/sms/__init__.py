"""SMS: the link to the operator (SMPP) and the outbox that survives restarts."""
