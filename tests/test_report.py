"""The report's gallery pages (latentman.metrics.gallery) and the Snakemake report built from them.

A small fake results tree (2 prompts x 3 variants, written with the project's own writers) in which one video
is missing and one is generated but not evaluated: the pages name both, label every variant, and show the
table as HTML. The browser tests open the pages, and the Snakemake report of a partly finished tiny run, in
headless Chromium and check what it displays (tools/install.sh installs Chromium; CI runs them).
"""

import html
import shutil
from html.parser import HTMLParser
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
from conftest import frames_record, run_tiny

from latentman.generation.storage import write_frames
from latentman.io import FORMAT_VERSIONS
from latentman.metrics.gallery import (
    Animation,
    VideoFiles,
    caption_html,
    fit_animations,
    write_prompt_page,
    write_summary_page,
)
from latentman.metrics.storage import write_evaluation
from latentman_dev.browser import Chromium, find_chromium, page_facts, report_results, show_report_result

needs_chromium = pytest.mark.skipif(
    find_chromium() is None,
    reason="Chromium is not installed (apt-get install -y chromium, as tools/install.sh does)",
)

PROMPTS = ("walker", "jumper")
VARIANTS = {
    "t2v_zero": ("t2v_zero", False, False),
    "latentman": ("latentman", True, True),
    "masactrl": (
        "masactrl",
        False,
        False,
    ),
}
MISSING = ("jumper", "masactrl")  # no frames, no evaluation
NOT_EVALUATED = ("walker", "latentman")  # frames, no evaluation


def frames_of(seed: int, count: int = 4, size: int = 32) -> np.ndarray:
    y, x = np.mgrid[:size, :size]
    return np.stack(
        [
            np.stack([(x * 4 + 9 * i + seed * 40) % 256, y * 6 % 256, (x + y + seed * 50) % 256], -1)
            for i in range(count)
        ]
    ).astype(np.uint8)


def evaluation(prompt: str, variant: str, h: float) -> dict:
    method, sla, pwg = VARIANTS[variant]
    return {
        "format": "eval",
        "format_version": FORMAT_VERSIONS["eval"],
        "prompt": prompt,
        "variant": variant,
        "settings": {"name": variant, "method": method, "sla": {"enabled": sla}, "pwg": {"enabled": pwg}},
        "h_mse": {"mean": h, "per_pair": [h - 1, h, h + 1], "skipped_pairs": []},
        "h_mse_official": {"mean": h / 2, "per_pair": [h / 2] * 4, "skipped_pairs": []},
        "wall_time_s": 2.5,
        "peak_memory_mb": 100.0,
        "note": "",
    }


@pytest.fixture(scope="module")
def fake_results(tmp_path_factory) -> tuple[Path, dict[str, list[VideoFiles]], dict[str, dict[str, Path]]]:
    results = tmp_path_factory.mktemp("fake") / "results"
    videos, previews = {}, {}
    for p, prompt in enumerate(PROMPTS):
        previews[prompt] = {
            "motion": results / "motion" / f"{prompt}.gif",
            "render": results / "render" / f"{prompt}.gif",
            "correspondence": results / "correspondence" / prompt / "preview.png",
        }
        (results / "motion").mkdir(parents=True, exist_ok=True)
        imageio.mimsave(
            previews[prompt]["motion"], list(frames_of(7 + p, 3)), format="GIF", duration=100, loop=0
        )
        # no render preview for jumper: a preview the page must name as missing
        if prompt == "walker":
            (results / "render").mkdir(parents=True, exist_ok=True)
            imageio.mimsave(
                previews[prompt]["render"], list(frames_of(9, 3)), format="GIF", duration=100, loop=0
            )
        previews[prompt]["correspondence"].parent.mkdir(parents=True, exist_ok=True)
        imageio.imwrite(previews[prompt]["correspondence"], frames_of(3, 1, 48)[0])
        videos[prompt] = []
        for v, variant in enumerate(VARIANTS):
            folder = results / "videos" / prompt / variant
            entry = VideoFiles(
                variant,
                folder / "frames.h5",
                results / "eval" / prompt / f"{variant}.json",
                folder / "video.mp4",
            )
            videos[prompt].append(entry)
            if (prompt, variant) == MISSING:
                continue
            write_frames(entry.frames, frames_record(frames_of(p * 3 + v), seed=1))
            if (prompt, variant) != NOT_EVALUATED:
                write_evaluation(entry.evaluation, evaluation(prompt, variant, 10.0 + 10 * v + p))
    return results, videos, previews


CAPTIONS = {
    "table": "Table of sweep ``{{ snakemake.wildcards.sweep }}``: *lower* is **better**.",
    "h_mse_per_pair": "Per pair <b>caption</b>.",
    "motion": "Motion of prompt ``{{ snakemake.wildcards.prompt }}``.",
}


@pytest.fixture(scope="module")
def pages(fake_results) -> dict[str, Path]:
    """The two prompt pages and the summary page of the fake results, sweep "default"."""
    results, videos, previews = fake_results
    out = results / "gallery"
    pages = {}
    for prompt in PROMPTS:
        pages[prompt] = out / "default" / f"{prompt}.html"
        write_prompt_page(
            pages[prompt],
            sweep="default",
            prompt=prompt,
            texts={"motion": f"{prompt} <moves>", "prompt": "a person in a red shirt"},
            videos=videos[prompt],
            previews=previews[prompt],
            fps=8,
            captions=CAPTIONS,
        )
    pages["summary"] = out / "default.html"
    write_summary_page(
        pages["summary"],
        sweep="default",
        videos=videos,
        groups={},
        contact_prompt="walker",
        captions=CAPTIONS,
    )
    return pages


class Figures(HTMLParser):
    """data-item and class of every <figure>, and the ids of elements, of a page."""

    def __init__(self):
        super().__init__()
        self.figures, self.ids, self.images = {}, set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "figure":
            self.figures[attrs["data-item"]] = attrs["class"]
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"][:30])


def test_pages_name_every_variant_and_what_is_missing(pages):
    walker = Figures()
    walker.feed(pages["walker"].read_text())
    # every variant has a figure; walker has all three videos, latentman's without an evaluation
    assert {k: v for k, v in walker.figures.items() if k.startswith("video:")} == {
        "video:t2v_zero": "video",
        "video:latentman": "video",
        "video:masactrl": "video",
    }
    assert all(src.startswith("data:image/webp;base64,") for src in walker.images)
    text = pages["walker"].read_text()
    assert "H_MSE: not evaluated yet" in text and "All 3 variants have a video." in text
    assert "walker &lt;moves&gt;" in text  # prompt text is escaped
    assert "Motion of prompt <code>walker</code>." in text  # the motion caption, wildcard filled
    jumper = Figures()
    jumper.feed(pages["jumper"].read_text())
    assert jumper.figures["video:masactrl"] == "video missing"
    assert jumper.figures["preview:render"] == "preview missing"
    assert "Missing: 1 of 3 variants have no video yet (masactrl)" in pages["jumper"].read_text()

    summary = pages["summary"].read_text()
    assert "4 of 6 videos are evaluated" in summary
    assert "<b>masactrl</b>: no video yet for jumper" in summary
    assert "<b>latentman</b>: generated, not evaluated yet for walker" in summary
    assert "Table of sweep <code>default</code>: <i>lower</i> is <b>better</b>." in summary
    assert "Per pair &lt;b&gt;caption&lt;/b&gt;." in summary  # caption text is escaped, markup is rst only
    parsed = Figures()
    parsed.feed(summary)
    assert set(parsed.figures) == {"plot:h_mse_per_pair", "plot:h_mse_bars", "plot:contact_sheet"}
    assert "h-mse-table" in parsed.ids


def test_animations_shrink_until_the_page_fits():
    noise = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)  # incompressible
    animations = [Animation(list(noise), 8.0, f"video:{k}") for k in range(2)]
    roomy, side = fit_animations(animations, 10_000_000)
    assert side == 256
    tight, side = fit_animations(animations, 100_000)
    assert side < 256 and sum(len(d) * 4 // 3 for d in tight.values()) <= 100_000
    assert all(len(tight[k]) < len(roomy[k]) for k in roomy)


def test_caption_fields_and_markup():
    rst = "Sweep ``{{ snakemake.wildcards.sweep }}`` of *one*\nprompt\n\n{{ snakemake.wildcards.x }} & more"
    assert caption_html(rst, {"sweep": "paper"}) == (
        "<p>Sweep <code>paper</code> of <i>one</i> prompt</p>\n<p>{{ snakemake.wildcards.x }} &amp; more</p>"
    )


def video_labels(facts: dict) -> dict[str, tuple[str, bool, bool]]:
    return {
        f["item"].removeprefix("video:"): (f["label"], f["decoded"], f["missing"])
        for f in facts["figures"]
        if f["item"].startswith("video:")
    }


@needs_chromium
def test_pages_display_in_chromium(pages):
    with Chromium(width=1200, height=900) as browser:
        browser.open(pages["walker"])
        walker = page_facts(browser)
        browser.open(pages["jumper"])
        jumper = page_facts(browser)
        browser.open(pages["summary"])
        summary = page_facts(browser)
    # every variant labelled with its name; the videos decoded as pictures (animated WebP) in the browser
    assert video_labels(walker) == {v: (v, True, False) for v in VARIANTS}
    assert video_labels(jumper) == {
        "t2v_zero": ("t2v_zero", True, False),
        "latentman": ("latentman", True, False),
        "masactrl": ("masactrl", False, True),
    }
    assert (
        "not generated yet"
        in next(f for f in jumper["figures"] if f["item"] == "video:masactrl")["caption"] + jumper["text"]
    )
    assert "masactrl" in jumper["missing"]
    assert all(f["width"] == 32 for f in walker["figures"] if f["item"].startswith("video:"))
    previews = {f["item"]: f["decoded"] for f in walker["figures"] if f["item"].startswith("preview:")}
    assert previews == {"preview:motion": True, "preview:render": True, "preview:correspondence": True}
    # the table as HTML, one row per variant, partial counts said; the plots decoded
    table = {row[0]: row for row in summary["table"]}
    assert set(table) == set(VARIANTS)
    assert table["latentman"][-1] == "1 of 2" and table["t2v_zero"][-1] == "2"
    assert table["masactrl"][4].startswith("30.00 ± 0.00")
    assert all(f["decoded"] for f in summary["figures"]) and len(summary["figures"]) == 3
    assert "masactrl: no video yet for jumper" in summary["missing"]


@pytest.mark.slow
@needs_chromium
def test_report_of_a_partly_finished_run_shows_the_gallery(tiny_run, tmp_path):
    """The tiny run with one video and its evaluation removed: the gallery builds from what exists
    (--config partial=true), `snakemake --report` succeeds, and the report viewer shows the pages."""
    workdir = tmp_path / "repo"
    shutil.copytree(tiny_run[0], workdir, symlinks=True)
    results = workdir / "results"
    shutil.rmtree(results / "videos" / "walker" / "latentman")
    (results / "eval" / "walker" / "latentman.json").unlink()
    built = run_tiny(workdir, "gallery_pages", "--config", "partial=true")
    assert built.returncode == 0, built.stderr[-3000:]
    assert "rule generate:" not in built.stdout + built.stderr  # nothing missing is rebuilt
    report = run_tiny(workdir, "--report", "report.html")
    assert report.returncode == 0, report.stderr[-3000:]

    with Chromium(width=1400, height=900) as browser:
        paths = report_results(browser, workdir / "report.html")
        assert sorted(paths) == sorted(
            [
                "results/gallery/default.html",
                *(f"results/gallery/default/{p}.html" for p in ("walker", "jumper")),
            ]
        )
        facts = {}
        for path in paths:
            facts[Path(path).stem] = page_facts(browser, show_report_result(browser, path))
    assert video_labels(facts["walker"]) == {
        "t2v_zero": ("t2v_zero", True, False),
        "latentman": ("latentman", False, True),
    }
    assert video_labels(facts["jumper"]) == {v: (v, True, False) for v in ("t2v_zero", "latentman")}
    assert "latentman" in facts["walker"]["missing"]
    assert [f["decoded"] for f in facts["walker"]["figures"] if f["item"].startswith("preview:")] == [
        True
    ] * 3
    assert "3 of 4 videos are evaluated" in facts["default"]["missing"]
    assert "latentman: no video yet for walker" in html.unescape(facts["default"]["missing"])
    # embedded:tiny has random weights: its rows carry the mark
    assert {row[0] for row in facts["default"]["table"]} == {"t2v_zero †", "latentman †"}
    assert [row[-1] for row in facts["default"]["table"]] == ["2", "1 of 2"]
