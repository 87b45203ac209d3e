"""Aggregation of hand-made eval JSON records into the Table 1/2 layout, and the plots."""

import numpy as np
import pandas as pd
import pytest

from latentman.errors import IntermediateFileError
from latentman.io import write_json
from latentman.metrics.aggregate import aggregate, write_table
from latentman.metrics.plots import (
    bars_figure,
    contact_sheet,
    contact_sheet_figure,
    per_pair_figure,
    plot_bars,
    plot_per_pair,
)
from latentman.metrics.storage import read_evaluation


def record(variant, prompt, method, sla, pwg, h, official, seconds, memory):
    return {
        "format": "eval",
        "format_version": 1,
        "prompt": prompt,
        "variant": variant,
        "seed": int(variant.rsplit(".s", 1)[1]) if ".s" in variant else 0,
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
    assert pd.isna(base.h_mse_rel_change_pct)  # the baseline has no change against itself
    assert full.backbone == "t2v_zero" and full.sla and full.pwg
    assert full.h_mse_mean == pytest.approx(75.0) and full.h_mse_std == pytest.approx(5.0)
    assert full.h_mse_rel_change_pct == pytest.approx(100 * (75 - 110) / 110)
    assert full.h_mse_official_mean == pytest.approx(65.0)
    assert full.seconds_per_video == pytest.approx(50.0) and full.peak_memory_mb == pytest.approx(3200.0)
    assert masa.backbone == "masactrl" and pd.isna(masa.h_mse_rel_change_pct)
    # paired per video: full.s1 on p1 (80) and p2 (70) against base.s1 on p1 (100) and p2 (120)
    assert full.h_mse_paired_change_pct == pytest.approx((-20.0 + 100 * (70 - 120) / 120) / 2)
    assert (full.videos_improved, full.videos_paired) == (2, 2)
    assert pd.isna(base.h_mse_paired_change_pct) and base.videos_paired == 0
    write_table(table, tmp_path / "t.csv", tmp_path / "t.md", title="Sweep test")
    back = pd.read_csv(tmp_path / "t.csv")
    assert back["h_mse_mean"].tolist() == pytest.approx([110.0, 75.0, 50.0])
    assert back["h_mse_rel_change_pct"].isna().tolist() == [True, False, True]  # empty cells
    markdown = (tmp_path / "t.md").read_text()
    assert (
        "| full | t2v_zero | ✓ | ✓ | 75.00 ± 5.00 | -31.8 % | -30.8 % (2/2) | base | 65.00 ± 5.00 "
        "| 50.0 | 3200 | 2 |" in markdown
    )
    assert "| base | t2v_zero | ✗ | ✗ | 110.00 ± 8.16 | — | — | — | 85.00 ± 4.08 |" in markdown
    assert back["baseline"].fillna("").tolist() == ["", "base", ""]
    assert "+0.0 %" not in markdown


def test_a_module_row_is_compared_with_the_same_settings_without_the_modules(tmp_path):
    """AnimateZero + SLA against AnimateZero alone (same backbone, same controls, SLA off), not against the
    backbone's first row; AnimateZero alone against that first row (AnimateDiff alone)."""

    def video(variant, prompt, controls, sla, h):
        made = record(variant, prompt, "animatediff", sla, False, h, 1.0, 1.0, 1.0)
        made["settings"]["animatediff"] = {"first_frame_insertion": controls}
        made["settings"]["name"] = variant
        return made

    made = [
        video("ad.s0", "p1", False, False, 100.0),
        video("ad.sla.s0", "p1", False, True, 90.0),
        video("az.s0", "p1", True, False, 200.0),
        video("az.sla.s0", "p1", True, True, 150.0),
    ]
    groups = {name: name.removesuffix(".s0") for name in ("ad.s0", "ad.sla.s0", "az.s0", "az.sla.s0")}
    table = aggregate(made, groups).set_index("variant")
    assert table["baseline"].to_dict() == {"ad": "", "ad.sla": "ad", "az": "ad", "az.sla": "az"}
    assert table.loc["ad.sla", "h_mse_rel_change_pct"] == pytest.approx(-10.0)
    assert table.loc["az", "h_mse_rel_change_pct"] == pytest.approx(100.0)
    assert table.loc["az.sla", "h_mse_rel_change_pct"] == pytest.approx(-25.0)
    assert table.loc["az.sla", "h_mse_paired_change_pct"] == pytest.approx(-25.0)
    # without AnimateZero alone in the sweep, its SLA row falls back to the backbone's first row
    table = aggregate([m for m in made if m["variant"] != "az.s0"], groups).set_index("variant")
    assert table.loc["az.sla", "baseline"] == "ad"
    assert table.loc["az.sla", "h_mse_rel_change_pct"] == pytest.approx(50.0)


def test_the_report_table_names_each_baseline_without_the_sweep_prefix():
    from latentman.metrics.gallery import table_html

    made = [
        record("s.ad.s0", "p1", "animatediff", False, False, 100.0, 1.0, 1.0, 1.0),
        record("s.ad.sla.s0", "p1", "animatediff", True, False, 90.0, 1.0, 1.0, 1.0),
    ]
    table = aggregate(made, {"s.ad.s0": "s.ad", "s.ad.sla.s0": "s.ad.sla"})
    cells = table_html(table, {})
    assert '<td class="text">ad</td>' in cells and '<td class="text">—</td>' in cells
    assert cells.startswith('<div class="wide"><table id="h-mse-table">')  # wide tables scroll, never cut


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


def test_one_variant_order_everywhere(records):
    """The sweep's order (first appearance), grouped by backbone: table rows, lines, bars, all alike."""
    by_name = {}
    for rec in records:
        by_name.setdefault(GROUPS.get(rec["variant"], rec["variant"]), []).append(rec)
    # the sweep lists full before base, with the masactrl variant in between
    swept = by_name["full"] + by_name["masa"] + by_name["base"]
    table = aggregate(swept, GROUPS)
    assert table["variant"].tolist() == ["full", "base", "masa"]
    # the change is still against the backbone's baseline, wherever that row stands
    assert table.iloc[0].h_mse_rel_change_pct == pytest.approx(100 * (75 - 110) / 110)
    lines = per_pair_figure(swept, GROUPS)
    axis = lines.axes[0]
    assert [t.get_text() for t in axis.get_legend().get_texts()] == ["full", "base", "masa"]
    # frame pairs are whole numbers on the axis
    ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    assert ticks == [1.0, 2.0]
    colours = {line.get_label(): line.get_color() for line in axis.get_lines()}
    assert colours["full"][2] > colours["full"][0] and colours["base"][2] > colours["base"][0]  # blues
    assert colours["masa"][0] > colours["masa"][2]  # the other backbone: orange
    bars = bars_figure(table).axes[0]
    assert [t.get_text() for t in bars.get_xticklabels()] == ["full", "base", "masa"]
    x = [patch.get_x() + patch.get_width() / 2 for patch in bars.patches]
    assert x[1] - x[0] == pytest.approx(1.0) and x[2] - x[1] == pytest.approx(2.0)  # a gap between backbones
    faces = [patch.get_facecolor() for patch in bars.patches]
    assert faces[0] == faces[1] != faces[2]  # coloured by backbone


def test_contact_sheet_labels_are_readable(tmp_path):
    """Row names sit left of the frames, one row each, never on top of each other or of a frame."""
    names = ["paper.t2v_zero", "paper.t2v_zero.sla+pwg.with_a_long_suffix", "paper.masactrl.sla"]
    frames = {name: np.full((5, 32, 32, 3), 40 * k, np.uint8) for k, name in enumerate(names)}
    fig = contact_sheet_figure(frames, max_frames=3, title="prompt walker")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = [text for ax in fig.axes for text in ax.texts]
    assert [t.get_text().replace("\n", "") for t in texts] == names  # wrapped, never cut
    assert all(t.get_fontsize() >= 10 for t in texts)
    boxes = [t.get_window_extent(renderer) for t in texts]
    first_frame = fig.axes[1].get_window_extent(renderer)
    assert all(box.x1 <= first_frame.x0 + 1 and box.x0 >= 0 for box in boxes)
    assert all(not a.overlaps(b) for k, a in enumerate(boxes) for b in boxes[k + 1 :])
    assert [ax.get_title() for ax in fig.axes[1:4]] == ["frame 0", "frame 2", "frame 4"]
