"""The shared vocabulary below every domain: who acts, layers, scopes, permissions.

Types that many domains pass around live here, not in one domain's service module, so a
domain never imports another (higher) one just to name a value. ``core`` imports only
``jarvis.kit`` and ``jarvis.errors`` (docs/decisions/0009-domain-order.md).
"""
