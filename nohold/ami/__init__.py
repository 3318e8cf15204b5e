"""The AMI side of nohold: one long-lived manager connection and what is built on it."""
