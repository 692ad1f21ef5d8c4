"""tools/monitoring/render-dashboard.py draws the heatmap of whatever range Prometheus returns,
without a warning: the guide's transcript is compared with what the script prints."""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "monitoring" / "render-dashboard.py"


def load_script():
    spec = importlib.util.spec_from_file_location("render_dashboard", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bucket(le: str, values: list[tuple[float, str]]) -> dict:
    return {"metric": {"le": le}, "values": [[t, v] for t, v in values]}


def drawn_counts(render, result, end, step):
    fig, ax = render.plt.subplots()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            render.draw_heatmap(ax, result, end, step)
            fig.canvas.draw()
        image = ax.get_images()[0]
        return image.get_array().tolist(), image.get_extent()
    finally:
        render.plt.close(fig)


def test_a_single_step_is_a_column_one_step_wide():
    render = load_script()
    result = [bucket("+Inf", [(100.0, "3")]), bucket("1024", [(100.0, "1")])]
    counts, extent = drawn_counts(render, result, end=101.0, step=1.0)
    assert counts == [[1.0], [2.0]]
    assert extent == pytest.approx((-1.5, -0.5, 0, 2))


def test_buckets_with_different_steps_share_one_grid():
    render = load_script()
    # The 1024 bucket has no sample at the first step: it counts 0 there, not a shifted column.
    result = [bucket("1024", [(11.0, "2")]), bucket("+Inf", [(10.0, "1"), (11.0, "4")])]
    counts, extent = drawn_counts(render, result, end=11.0, step=1.0)
    assert counts == [[0.0, 2.0], [1.0, 2.0]]
    assert extent == pytest.approx((-1.5, 0.5, 0, 2))
