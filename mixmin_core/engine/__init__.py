"""The experiment engine: one plan, method registry, compute ledger and summary for every domain."""
