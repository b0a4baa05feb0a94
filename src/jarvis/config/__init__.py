"""Business configuration (the seed's ConfigService): registry, values, precedence,
cache, snapshots, change log and approvals."""
