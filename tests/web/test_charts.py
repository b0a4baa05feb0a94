"""The SVG chart functions: well-formed, escaped, proportional, and calm with no data."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from jarvis.web.charts import Series, line_chart, nice_ceiling, stacked_bars

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    # The markup is a fragment without the namespace: add it to parse as SVG.
    text = str(svg).replace("<svg ", f'<svg xmlns="{SVG[1:-1]}" ', 1)
    return ET.fromstring(text)  # noqa: S314 - our own markup


def rects(root: ET.Element) -> list[ET.Element]:
    return root.findall(f".//{SVG}rect")


def test_labels_titles_and_descriptions_are_escaped() -> None:
    evil = '<script>alert("x")</script>&'
    svg = stacked_bars(
        "c1",
        [evil, "b"],
        [Series(evil, "series-ok", [1, 2])],
        title=evil,
        description=evil,
    )
    assert "<script>" not in svg
    assert "&lt;script&gt;" in svg
    root = parse(svg)  # still well-formed XML
    assert root.find(f"{SVG}title").text == evil  # type: ignore[union-attr]
    assert root.get("role") == "img"
    assert root.get("aria-labelledby") == "c1-title c1-desc"


def test_bar_heights_are_proportional_to_values_and_stack() -> None:
    root = parse(
        stacked_bars(
            "c2",
            ["a", "b", "c"],
            [Series("ok", "series-ok", [1, 2, 4]), Series("bad", "series-fail", [0, 0, 2])],
            title="t",
            description="d",
        )
    )
    bars = rects(root)
    assert [b.get("class") for b in bars] == ["series-ok"] * 3 + ["series-fail"]
    heights = [float(b.get("height", "0")) for b in bars]
    assert heights[1] == pytest.approx(2 * heights[0])
    assert heights[2] == pytest.approx(4 * heights[0])
    assert heights[3] == pytest.approx(2 * heights[0])
    # The failed segment sits on top of the completed one in the same bar.
    ok_c, fail_c = bars[2], bars[3]
    assert float(fail_c.get("y", "0")) + heights[3] == pytest.approx(float(ok_c.get("y", "0")))
    assert fail_c.get("x") == ok_c.get("x")


def test_empty_data_draws_axes_and_a_note_but_no_bars() -> None:
    svg = stacked_bars(
        "c3",
        ["a", "b"],
        [Series("ok", "series-ok", [0, 0])],
        title="t",
        description="d",
        empty_message="Nothing yet",
    )
    root = parse(svg)
    assert rects(root) == []
    notes = [t for t in root.iter(f"{SVG}text") if t.get("class") == "chart-empty"]
    assert [n.text for n in notes] == ["Nothing yet"]


def test_line_chart_breaks_where_figures_are_missing() -> None:
    root = parse(
        line_chart(
            "c4",
            ["1", "2", "3", "4", "5"],
            [50, None, 25, 100, None],
            title="t",
            description="d",
            max_value=100,
        )
    )
    dots = root.findall(f".//{SVG}circle")
    assert [d.get("data-value") for d in dots] == ["50", "25", "100"]
    # 100 is at the top of the plot, 25 a quarter of the way up, 50 half way.
    ys = [float(d.get("cy", "0")) for d in dots]
    base = ys[2] + (ys[0] - ys[2]) * 2  # where 0 would be
    assert base - ys[1] == pytest.approx((base - ys[2]) / 4)
    paths = root.findall(f".//{SVG}path")
    assert [p.get("class") for p in paths].count("series-main") == 1  # only the 25-100 run
    assert [p.get("class") for p in paths].count("series-area") == 2


def test_line_chart_without_figures_says_so() -> None:
    root = parse(line_chart("c5", ["a", "b"], [None, None], title="t", description="d"))
    assert root.findall(f".//{SVG}circle") == []
    assert any(t.get("class") == "chart-empty" for t in root.iter(f"{SVG}text"))


def test_series_classes_are_the_servers_choice() -> None:
    with pytest.raises(ValueError, match="unknown chart series class"):
        stacked_bars("c6", ["a"], [Series("x", 'x" onclick="y', [1])], title="t", description="d")


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1), (1, 1), (3, 4), (7, 8), (9, 10), (12, 20), (45, 50), (0.3, 0.4)]
)
def test_axis_tops_are_round_numbers(value: float, expected: float) -> None:
    assert nice_ceiling(value) == pytest.approx(expected)
