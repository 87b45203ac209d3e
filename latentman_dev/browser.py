"""Headless Chromium, driven over the DevTools protocol on a pipe (no extra Python packages).

Used to check that the Snakemake report and its gallery pages really display in a browser
(tests/test_report.py) and to take the README's screenshot of the report (tools/report_screenshot.py).
Chromium comes from Debian (`apt-get install chromium`, in tools/install.sh); :func:`find_chromium` says why
when it is missing.

The protocol runs over file descriptors 3 (commands in) and 4 (replies out) of the browser process
(``--remote-debugging-pipe``), messages are JSON separated by NUL bytes.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from latentman.errors import LatentmanError

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Headless, offline and quiet: no sandbox (runs as root in containers and CI), no GPU, no network calls home.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


class BrowserError(LatentmanError):
    """Chromium is missing, did not start, or a page did not load or display in time."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary ($LATENTMAN_CHROMIUM first), or None."""
    override = os.environ.get("LATENTMAN_CHROMIUM")
    if override:
        return override
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page; use as a context manager.

    >>> with Chromium(width=1400, height=900) as browser:
    ...     browser.open(Path("page.html"))
    ...     html = browser.evaluate("document.documentElement.outerHTML")
    """

    def __init__(
        self, width: int = 1400, height: int = 900, timeout: float = 60.0, binary: str | None = None
    ):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise BrowserError(
                "no Chromium found (looked for chromium, chromium-browser, google-chrome); install it with "
                "`apt-get install -y chromium` (tools/install.sh does) or set LATENTMAN_CHROMIUM to its path"
            )
        self.width, self.height, self.timeout = width, height, timeout
        self._profile = tempfile.TemporaryDirectory(prefix="latentman-chromium-")
        self._next_id = 0
        self._buffer = b""
        self._events: list[dict] = []
        self._session: str | None = None
        self._start()

    # ------------------------------------------------------------------ process and protocol
    def _start(self) -> None:
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()

        def on_fds_3_and_4():  # in the child, before exec: the protocol's fixed descriptors
            a, b = os.dup(commands_read), os.dup(replies_write)  # copies first: 3 or 4 may be one of them
            os.dup2(a, 3)
            os.dup2(b, 4)

        args = [self.binary, *FLAGS, f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe"]
        args += [f"--window-size={self.width},{self.height}", "about:blank"]
        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
        )
        os.close(commands_read)
        os.close(replies_write)
        pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        if not pages:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
        else:
            target = pages[0]["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"Chromium did not answer within {self.timeout:.0f} s")
            ready, _, _ = select.select([self._replies], [], [], left)
            if ready:
                chunk = os.read(self._replies, 1 << 20)
                if not chunk:
                    raise BrowserError(f"Chromium exited: {self._stderr_tail()}")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def _stderr_tail(self) -> str:
        if self._process.poll() is None:
            return "(still running)"
        return (self._process.stderr.read() or b"").decode(errors="replace")[-800:]

    def send(self, method: str, **params: Any) -> dict:
        """One protocol command on the page (browser-level for Target.*); its result, or BrowserError."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self._session and not method.startswith("Target."):
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"Chromium: {method} failed: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for index, event in enumerate(self._events):
                if event["method"] == method:
                    return self._events.pop(index)
            self._events.append(self._read_message(deadline))

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ pages
    def open(self, path: str | os.PathLike) -> None:
        """Load a local file and wait for its load event."""
        if not Path(path).is_file():
            raise BrowserError(f"{path} does not exist")
        self._events = [e for e in self._events if e["method"] != "Page.loadEventFired"]
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str, frame_id: str | None = None) -> Any:
        """The JSON value of a JavaScript expression (promises awaited) in the page or in one of its
        frames."""
        params: dict[str, Any] = {"expression": expression, "returnByValue": True, "awaitPromise": True}
        if frame_id is not None:
            # an isolated world sees the frame's DOM even when its origin differs (data: URLs)
            world = self.send("Page.createIsolatedWorld", frameId=frame_id, worldName="latentman-check")
            params["contextId"] = world["executionContextId"]
        result = self.send("Runtime.evaluate", **params)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def child_frames(self) -> list[dict]:
        """Frames inside the page (id and url), e.g. the iframe the Snakemake report shows a result in."""
        tree = self.send("Page.getFrameTree")["frameTree"]
        found, stack = [], list(tree.get("childFrames", []))
        while stack:
            node = stack.pop()
            found.append(node["frame"])
            stack += node.get("childFrames", [])
        return found

    def wait_until(self, expression: str, frame_id: str | None = None, what: str = "") -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression, frame_id)
            if value:
                return value
            time.sleep(0.2)
        raise BrowserError(f"timed out after {self.timeout:.0f} s waiting for {what or expression}")

    def screenshot(self, path: str | os.PathLike, full_page: bool = False) -> None:
        """PNG of the viewport (or the whole page), written atomically."""
        from latentman.io import atomic_path

        params: dict[str, Any] = {"format": "png"}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            params["captureBeyondViewport"] = True
        data = base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)


# ------------------------------------------------------------------ the Snakemake report and gallery pages
# What a gallery page shows, read back from the browser's DOM: every figure with its label and whether its
# picture decoded, the table's rows, and the missing/complete notices (latentman.metrics.gallery).
PAGE_FACTS = """(() => {
  const text = (node) => (node ? node.textContent.replace(/\\s+/g, " ").trim() : "");
  const figures = [...document.querySelectorAll("figure")].map((f) => {
    const images = [...f.querySelectorAll("img")];
    return {
      item: f.dataset.item || "",
      missing: f.classList.contains("missing"),
      label: text(f.querySelector("figcaption b")),
      caption: text(f.querySelector("figcaption")),
      decoded: images.length > 0 && images.every((i) => i.complete && i.naturalWidth > 0),
      width: images.length ? images[0].naturalWidth : 0,
      shown_width: images.length ? images[0].getBoundingClientRect().width : 0,
    };
  });
  const rows = [...document.querySelectorAll("#h-mse-table tr")].slice(1)
    .map((r) => [...r.cells].map((c) => text(c)));
  return {title: document.title, figures, table: rows, missing: text(document.getElementById("missing")),
          complete: text(document.getElementById("complete")), text: text(document.body)};
})()"""

PAGE_LOADED = "document.readyState === 'complete' && [...document.images].every((i) => i.complete)"


def page_facts(browser: Chromium, frame_id: str | None = None) -> dict:
    """PAGE_FACTS of the page (or of one of its frames) once it and all its pictures have loaded."""
    browser.wait_until(PAGE_LOADED, frame_id, what="the page and its pictures to load")
    return browser.evaluate(PAGE_FACTS, frame_id)


def report_results(browser: Chromium, report: str | os.PathLike) -> list[str]:
    """Open a Snakemake report (single-file HTML) and list the paths of the results it holds."""
    browser.open(report)
    browser.wait_until("typeof results === 'object' && typeof app === 'object'", what="the report viewer")
    return browser.evaluate("Object.keys(results)")


def show_report_result(browser: Chromium, path: str) -> str:
    """Show one HTML result of the open report in its viewer, as its eye button does, and return the id of
    the frame it is displayed in (once loaded). Fails when the viewer leaves the frame blank, as it does
    for pages over Chromium's 2 MiB data-URL limit."""
    prefix = browser.evaluate(f"results[{json.dumps(path)}].data_uri.slice(0, 400)")
    browser.evaluate(
        f"app.setView({{content: 'html', contentPath: results[{json.dumps(path)}].data_uri, "
        f"resultPath: {json.dumps(path)}}})"
    )
    deadline = time.monotonic() + browser.timeout
    while time.monotonic() < deadline:
        shown = [f for f in browser.child_frames() if f["url"].startswith(prefix)]
        if shown:
            return shown[-1]["id"]
        time.sleep(0.2)
    urls = [f["url"][:60] for f in browser.child_frames()]
    raise BrowserError(f"the report viewer did not display {path} (frames: {urls})")
