"""Aggregation of hand-made eval JSON records into the Table 1/2 layout, and the plots."""

import numpy as np
import pandas as pd
import pytest

from latentman.errors import IntermediateFileError
from latentman.io import write_json
from latentman.metrics.aggregate import aggregate, write_table
from latentman.metrics.plots import contact_sheet, plot_bars, plot_per_pair
from latentman.metrics.storage import read_evaluation


def record(variant, prompt, method, sla, pwg, h, official, seconds, memory):
    return {
        "format": "eval",
        "format_version": 1,
        "prompt": prompt,
        "variant": variant,
        "settings": {"method": method, "sla": {"enabled": sla}, "pwg": {"enabled": pwg}},
        "h_mse": {"mean": h, "per_pair": [h - 1, h + 1], "skipped_pairs": []},
        "h_mse_official": {"mean": official, "per_pair": [official] * 3, "skipped_pairs": []},
        "wall_time_s": seconds,
        "peak_memory_mb": memory,
    }


@pytest.fixture()
def records(tmp_path):
    made = [
        record("base.s1", "p1", "t2v_zero", False, False, 100.0, 80.0, 10.0, 1000.0),
        record("base.s1", "p2", "t2v_zero", False, False, 120.0, 90.0, 20.0, 1100.0),
        record("base.s2", "p1", "t2v_zero", False, False, 110.0, 85.0, 30.0, 1050.0),
        record("full.s1", "p1", "latentman", True, True, 80.0, 70.0, 40.0, 3000.0),
        record("full.s1", "p2", "latentman", True, True, 70.0, 60.0, 60.0, 3200.0),
        record("masa", "p1", "masactrl", False, False, 50.0, 40.0, 5.0, 500.0),
    ]
    paths = []
    for k, rec in enumerate(made):
        paths.append(tmp_path / f"eval_{k}.json")
        write_json(paths[-1], rec)
    return [read_evaluation(p) for p in paths]


GROUPS = {"base.s1": "base", "base.s2": "base", "full.s1": "full"}


def test_table_numbers(records, tmp_path):
    table = aggregate(records, GROUPS)
    assert table["variant"].tolist() == ["base", "full", "masa"]
    base, full, masa = (table.iloc[k] for k in range(3))
    assert base.videos == 3 and base.h_mse_mean == pytest.approx(110.0)
    assert base.h_mse_std == pytest.approx(np.std([100, 120, 110]))
    assert base.h_mse_rel_change_pct == pytest.approx(0.0)
    assert full.backbone == "t2v_zero" and full.sla and full.pwg
    assert full.h_mse_mean == pytest.approx(75.0) and full.h_mse_std == pytest.approx(5.0)
    assert full.h_mse_rel_change_pct == pytest.approx(100 * (75 - 110) / 110)
    assert full.h_mse_official_mean == pytest.approx(65.0)
    assert full.seconds_per_video == pytest.approx(50.0) and full.peak_memory_mb == pytest.approx(3200.0)
    assert masa.backbone == "masactrl" and masa.h_mse_rel_change_pct == pytest.approx(0.0)
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md", title="Sweep test")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["h_mse_mean"].tolist() == pytest.approx([110.0, 75.0, 50.0])
    markdown = (tmp_path / "t.md").read_text()
    assert "| full | t2v_zero | ✓ | ✓ | 75.00 ± 5.00 | -31.8 % | 65.00 ± 5.00 | 50.0 | 3200 | 2 |" in markdown


def test_plots_are_written(records, tmp_path):
    table = aggregate(records, GROUPS)
    plot_per_pair(records, GROUPS, tmp_path / "pairs.png")
    plot_bars(table, tmp_path / "bars.png")
    frames = {name: np.full((4, 16, 16, 3), k * 60, np.uint8) for k, name in enumerate(["a", "b"])}
    contact_sheet(frames, tmp_path / "sheet.png", max_frames=3)
    for name in ("pairs.png", "bars.png", "sheet.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_wrong_format_is_refused(tmp_path):
    write_json(tmp_path / "x.json", {"format": "frames", "format_version": 1})
    with pytest.raises(IntermediateFileError, match="rerun rule 'evaluate'"):
        read_evaluation(tmp_path / "x.json")


def test_random_weight_videos_are_marked_in_the_table(records, tmp_path):
    marked = [dict(r, note="random weights: frames are structured noise, not pictures") for r in records]
    table = aggregate(marked, GROUPS)
    assert table["random_weights"].all()
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md")
    markdown = (tmp_path / "t.md").read_text()
    assert "Random weights" in markdown and "| full † | t2v_zero |" in markdown
    # real-weight records carry no marker
    assert not aggregate(records, GROUPS)["random_weights"].any()
