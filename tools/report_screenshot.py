#!/usr/bin/env python
"""The README's screenshot of the report: a gallery page shown in the Snakemake report, in headless Chromium.

    snakemake --cores all && snakemake --report report.html
    python tools/report_screenshot.py report.html [--page default/walker] [--out docs/report.png]

Opens the single-file report, shows the gallery page whose path ends with ``--page`` (default: the first
prompt page of sweep "default") as its eye button does, checks that every video and preview on it decoded,
and writes a PNG of the window. Needs Chromium (`apt-get install -y chromium`, tools/install.sh).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from latentman.errors import LatentmanError
    from latentman_dev.browser import Chromium, page_facts, report_results, show_report_result

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report built by `snakemake --report report.html`")
    parser.add_argument("--page", default="", help="end of the gallery page's path, e.g. default/walker")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=860)
    args = parser.parse_args(argv)
    if not args.report.is_file():
        raise SystemExit(f"{args.report} does not exist: build it with `snakemake --report {args.report}`")
    try:
        with Chromium(width=args.width, height=args.height) as browser:
            pages = sorted(p for p in report_results(browser, args.report) if "/gallery/" in p)
            wanted = [p for p in pages if p.removesuffix(".html").endswith(args.page)] if args.page else pages
            prompt_pages = [p for p in wanted if p.count("/") >= 3]  # results/gallery/{sweep}/{prompt}.html
            if not wanted:
                raise SystemExit(f"no gallery page ending with {args.page!r} in {args.report}: {pages}")
            page = wanted[0] if args.page else (prompt_pages or wanted)[0]
            facts = page_facts(browser, show_report_result(browser, page))
            broken = [f["item"] for f in facts["figures"] if not f["decoded"] and not f["missing"]]
            if broken:
                raise SystemExit(f"{page}: these pictures did not decode in Chromium: {broken}")
            browser.screenshot(args.out)
    except LatentmanError as error:
        raise SystemExit(f"report_screenshot: {error}") from None
    shown = sum(not f["missing"] for f in facts["figures"])
    print(f"{args.out}: {page} ({shown} pictures shown, missing: {facts['missing'] or 'nothing'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
