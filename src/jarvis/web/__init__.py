"""The web UI: server-rendered pages (Jinja2), persona themes, small ES modules.

Nothing imports this package except ``jarvis.main``; pages call the domain services the
API and the CLI use. docs/web.md describes the pages and how they are built.
"""
