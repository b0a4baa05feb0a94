"""The demo: personas, agents in all six layers, rule tables, templates, a user per persona.

``scenarios/*.yaml`` holds the data, one file per scenario (platform, underwriting,
service_desk, claims); ``loader`` reads and checks it, ``data`` is what it loaded,
``service`` stores it through each domain's service (``jarvis seed demo``) and ``history``
runs the demo users' first commands (``--with-history``).
"""
