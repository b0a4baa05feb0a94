"""Governance: the audit ledger now; model inventory, risk and approvals later."""
