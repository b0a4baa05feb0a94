"""Every page, walked from the app's routes: escaped, CSP-clean, labelled, CSRF-protected.

The demo data is seeded with hostile strings (an agent named with a script tag, a command with
an event-handler attribute); every GET page route is rendered for the admin and checked:
nothing user-supplied arrives as markup, no inline script or style (the CSP forbids them),
every control has a label, every form that changes something carries the CSRF token, one h1.
A new page route with a path parameter this test cannot fill fails it: add the parameter.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from jarvis.db.engine import Database
from jarvis.db.session import unit_of_work
from jarvis.demo.service import seed_demo
from jarvis.wiring import config_service
from tests.factories import create_agent
from tests.web.conftest import Browser

HOSTILE_NAME = "<script>alert('agent')</script>"
HOSTILE_COMMAND = 'Review <img src=x onerror="alert(1)"> now'


class PageAudit(HTMLParser):
    """Collects what the checks need from one page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.h1 = 0
        self.labels_for: set[str] = set()
        self.controls: list[tuple[str, dict[str, str | None]]] = []
        self.label_depth = 0
        self.forms: list[dict[str, object]] = []
        self.in_script = False
        self.lang = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name, value in attrs:
            if name == "style":
                self.problems.append(f"inline style on <{tag}>")
            if name.startswith("on"):
                self.problems.append(f"event handler attribute {name} on <{tag}>")
            if name in ("href", "src", "action") and (value or "").lower().startswith(
                "javascript:"
            ):
                self.problems.append(f"javascript: URL on <{tag}>")
        if tag == "html" and a.get("lang"):
            self.lang = True
        if tag == "style":
            self.problems.append("<style> element")
        if tag == "script":
            if not a.get("src"):
                self.problems.append("inline <script>")
            self.in_script = True
        if tag == "h1":
            self.h1 += 1
        if tag == "label":
            self.label_depth += 1
            if a.get("for"):
                self.labels_for.add(str(a["for"]))
        if tag == "form":
            self.forms.append({"method": (a.get("method") or "get").lower(), "csrf": False})
        if tag == "input" and a.get("name") == "csrf_token" and self.forms:
            self.forms[-1]["csrf"] = True
        if tag in ("input", "select", "textarea"):
            kind = (a.get("type") or "text").lower()
            if kind not in ("hidden", "submit", "button", "reset", "image"):
                wrapped = self.label_depth > 0
                self.controls.append((tag, {**a, "_wrapped": "1" if wrapped else None}))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.label_depth = max(0, self.label_depth - 1)
        if tag == "script":
            self.in_script = False

    def handle_data(self, data: str) -> None:
        if self.in_script and data.strip():
            self.problems.append("inline <script> content")

    def unlabelled(self) -> list[str]:
        out = []
        for tag, a in self.controls:
            if a.get("_wrapped") or a.get("aria-label") or a.get("aria-labelledby"):
                continue
            if a.get("id") in self.labels_for:
                continue
            out.append(f"<{tag} name={a.get('name')!r}>")
        return out


async def _seed(db: Database, browser: Browser) -> dict[str, str]:
    async with unit_of_work(db) as session:
        await seed_demo(session, config=config_service(db, poll_seconds=0))
    agent = await create_agent(db, name=HOSTILE_NAME, description=HOSTILE_NAME)
    started = await browser.client.post(
        "/api/agent-executions",
        json={"command": HOSTILE_COMMAND, "persona": "admin"},
        headers={"X-CSRF-Token": browser.csrf},
    )
    assert started.status_code == 202, started.text
    snapshot = await browser.client.post(
        "/api/config/snapshots",
        json={"name": "hygiene", "description": HOSTILE_NAME},
        headers={"X-CSRF-Token": browser.csrf},
    )
    assert snapshot.status_code == 201, snapshot.text
    return {
        "agent_id": str(agent.id),
        "id": str(agent.id),
        "execution_id": started.json()["executionId"],
        "key": "persona.colors",
        "snapshot_id": str(snapshot.json()["id"]),
        "version": "1",
        "persona": "admin",
    }


def _page_paths(app: object, values: dict[str, str]) -> list[str]:
    paths: list[str] = []
    unknown: list[str] = []
    for context in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        route = context.original_route
        if not isinstance(route, APIRoute) or "GET" not in (context.methods or set()):
            continue
        if not route.endpoint.__module__.startswith("jarvis.web."):
            continue
        path = context.path_format
        if path.endswith(".css"):
            continue
        for name in re.findall(r"{(\w+)(?::\w+)?}", path):
            if name not in values:
                unknown.append(f"{path} ({name})")
                continue
            path = re.sub(r"{" + name + r"(?::\w+)?}", values[name], path)
        paths.append(path)
    assert not unknown, f"page routes with parameters this test cannot fill: {unknown}"
    return sorted(set(paths))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_every_page_is_escaped_csp_clean_labelled_and_csrf_protected(
    admin_browser: Browser, db: Database, app: object
) -> None:
    values = await _seed(db, admin_browser)
    paths = _page_paths(app, values)
    assert "/" in paths and "/login" in paths
    report: list[str] = []
    for path in paths:
        page = await admin_browser.get(path)
        if path == "/login":
            assert page.status_code == 303  # signed in already
            continue
        if page.status_code != 200:
            report.append(f"{path}: {page.status_code}")
            continue
        csp = page.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        html = page.text
        for raw in (HOSTILE_NAME, "<img src=x", 'onerror="alert'):
            if raw in html:
                report.append(f"{path}: unescaped {raw!r}")
        audit = PageAudit()
        audit.feed(html)
        report += [f"{path}: {p}" for p in audit.problems]
        report += [f"{path}: unlabelled {c}" for c in audit.unlabelled()]
        if audit.h1 != 1:
            report.append(f"{path}: {audit.h1} h1 elements")
        if not audit.lang:
            report.append(f"{path}: <html> without lang")
        for form in audit.forms:
            if form["method"] == "post" and not form["csrf"]:
                report.append(f"{path}: a POST form without csrf_token")
    assert not report, "\n".join(report)


async def test_hostile_names_show_as_text(admin_browser: Browser, db: Database) -> None:
    agent = await create_agent(db, name=HOSTILE_NAME)
    for path in (f"/agents/{agent.id}", "/agents?q=script"):
        page = await admin_browser.get(path)
        assert page.status_code == 200, path
        assert HOSTILE_NAME not in page.text, path
        assert "&lt;script&gt;alert(&#39;agent&#39;)&lt;/script&gt;" in page.text, path
