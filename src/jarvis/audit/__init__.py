"""The tamper-evident audit ledger: every change and access decision, hash-chained."""
