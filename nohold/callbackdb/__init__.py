"""nohold's database: promises that must survive restarts (notice proofs, later callbacks)."""
