"""Persona themes: a persona's configured colours (``persona.colors``) become CSS custom
properties for light and dark mode, with every text colour made readable.

Configured schemes are the seed's: a dark background, a glass tint and three brand colours.
Used as they are, some pairs fail WCAG AA (the underwriter's green on its own dark green is
4.3:1). So the theme keeps each colour's hue and moves its lightness toward black or white
just far enough that text reaches 4.5:1 against every surface it sits on. ``contrast_pairs``
lists those pairs so a test (and an operator) can check any scheme.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RGB = tuple[float, float, float]

# WCAG 2.x AA for body text.
AA_TEXT = 4.5
WHITE: RGB = (255.0, 255.0, 255.0)
BLACK: RGB = (0.0, 0.0, 0.0)
MODES = ("light", "dark")

_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
_RGB = re.compile(
    r"rgba?\(\s*(\d{1,3})\s*,\s*(\d{1,3})\s*,\s*(\d{1,3})\s*(?:,\s*(0|1|0?\.\d+)\s*)?\)"
)


def parse_colour(value: str) -> tuple[RGB, float]:
    """``#rgb``, ``#rrggbb``, ``#rrggbbaa``, ``rgb()`` or ``rgba()`` as (rgb, alpha)."""
    text = value.strip()
    if match := _HEX.fullmatch(text):
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(c * 2 for c in digits)
        channels = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
        alpha = channels[3] / 255 if len(channels) == 4 else 1.0
        return (float(channels[0]), float(channels[1]), float(channels[2])), alpha
    if match := _RGB.fullmatch(text):
        r, g, b = (min(255, int(match.group(i))) for i in (1, 2, 3))
        alpha = float(match.group(4)) if match.group(4) is not None else 1.0
        return (float(r), float(g), float(b)), alpha
    raise ValueError(f"not a CSS colour this theme understands: {value!r}")


def to_hex(rgb: RGB) -> str:
    return "#" + "".join(f"{round(max(0.0, min(255.0, c))):02x}" for c in rgb)


def mix(a: RGB, b: RGB, weight_b: float) -> RGB:
    """``a`` moved ``weight_b`` of the way toward ``b`` (0: a, 1: b)."""
    return (
        a[0] + (b[0] - a[0]) * weight_b,
        a[1] + (b[1] - a[1]) * weight_b,
        a[2] + (b[2] - a[2]) * weight_b,
    )


def over(colour: RGB, alpha: float, backdrop: RGB) -> RGB:
    """A translucent colour as it shows over ``backdrop``."""
    return mix(backdrop, colour, alpha)


def relative_luminance(rgb: RGB) -> float:
    """WCAG 2.x relative luminance of an sRGB colour."""

    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: RGB, b: RGB) -> float:
    """WCAG contrast ratio, 1 to 21."""
    la, lb = relative_luminance(a), relative_luminance(b)
    lighter, darker = max(la, lb), min(la, lb)
    return (lighter + 0.05) / (darker + 0.05)


def rounded(rgb: RGB) -> RGB:
    """The colour as CSS will carry it (whole channel values): contrast is checked on this."""
    return (float(round(rgb[0])), float(round(rgb[1])), float(round(rgb[2])))


def readable_on(colour: RGB, backgrounds: Iterable[RGB], *, target: float = AA_TEXT) -> RGB:
    """``colour`` moved toward black or white, the least needed, until it reaches ``target``
    against every background (the direction that gets there first; black or white at worst)."""
    grounds = list(backgrounds)

    def ok(c: RGB) -> bool:
        return all(contrast_ratio(c, g) >= target for g in grounds)

    colour = rounded(colour)
    if ok(colour):
        return colour
    for step in range(1, 41):
        weight = step / 40
        for pole in (WHITE, BLACK):
            candidate = rounded(mix(colour, pole, weight))
            if ok(candidate):
                return candidate
    # Neither pole reaches the target against all grounds at once (grounds of mid
    # luminance on both sides): the better pole.
    return max((WHITE, BLACK), key=lambda p: min(contrast_ratio(p, g) for g in grounds))


@dataclass(frozen=True)
class ModeTheme:
    """The colours of one mode, all opaque except ``glass`` (the card tint)."""

    background: RGB
    surface: RGB  # a card: the glass tint over the background
    glass: str  # CSS colour of the card tint (translucent)
    text: RGB
    muted: RGB
    link: RGB
    button: RGB
    button_text: RGB
    accent: RGB
    border: RGB
    success: RGB
    warning: RGB
    danger: RGB
    glows: tuple[RGB, ...] = ()

    def custom_properties(self) -> dict[str, str]:
        names = {
            "bg": self.background,
            "surface": self.surface,
            "text": self.text,
            "muted": self.muted,
            "link": self.link,
            "button": self.button,
            "button-text": self.button_text,
            "accent": self.accent,
            "border": self.border,
            "success": self.success,
            "warning": self.warning,
            "danger": self.danger,
        }
        props = {f"--{name}": to_hex(value) for name, value in names.items()}
        props["--glass"] = self.glass
        for i, glow in enumerate(self.glows, 1):
            props[f"--glow-{i}"] = to_hex(glow)
        return props


def _glows(bg: RGB, accent: RGB, primary: RGB) -> list[RGB]:
    """The page background where app.css lays its two soft glows (accent 18 %, the button
    colour 14 %): text must stay readable there too."""
    return [rounded(mix(bg, accent, 0.18)), rounded(mix(bg, primary, 0.14))]


def _status_colours(grounds: list[RGB], dark: bool) -> tuple[RGB, RGB, RGB]:
    base = ((52.0, 211.0, 153.0), (251.0, 191.0, 36.0), (248.0, 113.0, 113.0))
    if not dark:
        base = ((4.0, 120.0, 87.0), (180.0, 83.0, 9.0), (185.0, 28.0, 28.0))
    s, w, d = (readable_on(c, grounds) for c in base)
    return s, w, d


def mode_theme(scheme: Mapping[str, str], mode: str) -> ModeTheme:
    """The readable theme of ``scheme`` in ``mode`` ("light" or "dark")."""
    primary, _ = parse_colour(scheme["primary"])
    secondary, _ = parse_colour(scheme["secondary"])
    accent, _ = parse_colour(scheme["accent"])
    background, _ = parse_colour(scheme["background"])
    glass_rgb, glass_alpha = parse_colour(scheme["glassmorphism"])
    if mode == "dark":
        # The configured background, kept dark enough for light text.
        bg = background
        if relative_luminance(bg) > 0.05:
            bg = readable_on(bg, [WHITE], target=12.0)
        surface = over(glass_rgb, glass_alpha, mix(bg, WHITE, 0.06))
        surface = mix(surface, WHITE, 0.04)
        # A light glass tint would leave light text unreadable on cards.
        surface = readable_on(surface, [WHITE], target=11.0)
        bg = rounded(bg)
        glass = f"rgba({', '.join(str(round(c)) for c in surface)}, 0.82)"
        grounds = [bg, surface, *_glows(bg, accent, primary)]
        text = readable_on((241.0, 245.0, 249.0), grounds, target=7.0)
        muted = readable_on(mix(text, bg, 0.3), grounds)
        link = readable_on(accent, grounds)
        border = mix(surface, WHITE, 0.16)
        accent_out = readable_on(accent, grounds, target=3.0)
    else:
        bg = rounded(mix(WHITE, primary, 0.05))
        surface = rounded(mix(WHITE, primary, 0.015))
        glass = f"rgba({', '.join(str(round(c)) for c in surface)}, 0.86)"
        grounds = [bg, surface, *_glows(bg, accent, primary)]
        text = readable_on(mix(secondary, BLACK, 0.75), grounds, target=7.0)
        muted = readable_on(mix(text, bg, 0.35), grounds)
        link = readable_on(secondary, grounds)
        border = mix(bg, BLACK, 0.14)
        accent_out = readable_on(primary, grounds, target=3.0)
    button = readable_on(primary, [WHITE])
    success, warning, danger = _status_colours(grounds, dark=mode == "dark")
    return ModeTheme(
        background=bg,
        surface=surface,
        glass=glass,
        text=text,
        muted=muted,
        link=link,
        button=button,
        button_text=WHITE,
        accent=accent_out,
        border=border,
        success=success,
        warning=warning,
        danger=danger,
        glows=tuple(grounds[2:]),
    )


def contrast_pairs(scheme: Mapping[str, str], mode: str) -> list[tuple[str, float]]:
    """Every text/background pair the theme shows, with its contrast ratio."""
    t = mode_theme(scheme, mode)
    pairs: list[tuple[str, float]] = []
    for fg_name, fg in (
        ("text", t.text),
        ("muted", t.muted),
        ("link", t.link),
        ("success", t.success),
        ("warning", t.warning),
        ("danger", t.danger),
    ):
        grounds = [("background", t.background), ("surface", t.surface)]
        grounds += [(f"glow {i}", g) for i, g in enumerate(t.glows, 1)]
        for bg_name, bg in grounds:
            pairs.append((f"{fg_name} on {bg_name}", contrast_ratio(fg, bg)))
    pairs.append(("button text on button", contrast_ratio(t.button_text, t.button)))
    return pairs


def _block(selector: str, props: Mapping[str, str]) -> str:
    body = "".join(f"  {name}: {value};\n" for name, value in props.items())
    return f"{selector} {{\n{body}}}\n"


def theme_css(scheme: Mapping[str, str]) -> str:
    """The stylesheet of a scheme: light by default, dark when the system asks for it or
    the user chose it (``<html data-mode="dark">``); ``data-mode="light"`` forces light."""
    light = mode_theme(scheme, "light").custom_properties()
    dark = mode_theme(scheme, "dark").custom_properties()
    return (
        "/* generated from persona.colors: do not edit */\n"
        + _block(":root", {**light, "color-scheme": "light"})
        + _block(':root[data-mode="dark"]', {**dark, "color-scheme": "dark"})
        + "@media (prefers-color-scheme: dark) {\n"
        + _block(':root:not([data-mode="light"])', {**dark, "color-scheme": "dark"})
        + "}\n"
    )


def scheme_version(scheme: Mapping[str, str]) -> str:
    """A short digest of a scheme: the theme URL changes whenever the colours do."""
    text = "|".join(f"{k}={scheme[k]}" for k in sorted(scheme))
    return hashlib.sha256(text.encode()).hexdigest()[:12]
