"""The `arwave serve` page in a real browser: Debian's Chromium, headless, driven by Playwright. The page
loads, lists the model, a generation streams (audio arrives in many pieces, the first long before the
last), the waveform is drawn, and the WAV downloads with exactly the model's audio.

Skipped only where no Chromium is installed (scripts/setup.sh installs it: `apt-get install chromium`).
ARWAVE_SERVE_SCREENSHOT=PATH also writes the screenshot there (docs/img/serve.png is made this way)."""

import os
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf

from arwave.serve import ServeSettings

sys.path.insert(0, str(Path(__file__).parent))
from serve_live import LiveServer, expected_pcm, make_runs_root  # noqa: E402

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
        if p and Path(p).is_file()
    ),
    None,
)
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.usefixtures("no_installed_bundles"),  # it serves its own run
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no Chromium installed (apt-get install chromium; "
        "scripts/setup.sh does it as root): browser test skipped",
    ),
]


@pytest.fixture(scope="module")
def served(cam_run, tmp_path_factory):
    root, outside = tmp_path_factory.mktemp("browser-runs"), tmp_path_factory.mktemp("browser-outside")
    make_runs_root(cam_run, root, outside)
    server = LiveServer(ServeSettings(runs_root=str(root), max_seconds=10))
    yield SimpleNamespace(server=server, cam=root / "group" / "cam")
    server.close()


def test_browser_streams_plays_and_downloads(served, tmp_path):
    from playwright.sync_api import sync_playwright

    seconds, seed = 2.0, 7
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 900, "height": 560}, accept_downloads=True)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(served.server.url + "/")
            page.wait_for_function("window.arwaveState.status === 'ready'", timeout=30_000)
            assert page.locator("#model option").all_inner_texts() == ["group/cam"]
            assert page.locator("#class option").all_inner_texts() == ["(model default)", "high", "low"]
            page.select_option("#class", "low")
            page.fill("#seed", str(seed))
            page.fill("#seconds", str(seconds))
            page.fill("#cfg", "2")
            page.fill("#k_inf", "0.1")
            page.click("#generate")
            page.wait_for_function("['done', 'error'].includes(window.arwaveState.status)", timeout=60_000)
            state = page.evaluate("window.arwaveState")
            assert state["status"] == "done", state
            assert state["bytes"] == round(seconds * 16000) * 2 * 2
            assert state["chunks"] >= 3, state  # audio came in pieces ...
            assert state["firstAudioMs"] < 0.5 * state["totalMs"], state  # ... the first long before the last
            assert state["scheduled"] == round(seconds * 16000)  # every sample was queued for playback
            # the waveform was drawn across the canvas
            drawn = page.evaluate("""() => { const c = document.getElementById('wave');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                const cols = new Set();
                for (let i = 0; i < d.length; i += 4) if (d[i + 3] && d[i + 2] > 150 && d[i] < 80)
                    cols.add((i / 4) % c.width); return cols.size / c.width; }""")
            assert drawn > 0.9, drawn
            assert "done:" in page.inner_text("#status")
            shot = tmp_path / "serve.png"
            page.screenshot(path=str(shot))
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("ARWAVE_SERVE_SCREENSHOT"):
                shutil.copyfile(shot, os.environ["ARWAVE_SERVE_SCREENSHOT"])
            with page.expect_download() as info:
                page.click("#download")
            download = info.value
            assert download.suggested_filename == f"arwave-group-cam-seed{seed}.wav"
            wav = tmp_path / download.suggested_filename
            download.save_as(str(wav))
            assert errors == []
        finally:
            browser.close()
    audio, rate = sf.read(str(wav), dtype="int16")
    assert rate == 16000 and audio.shape == (round(seconds * 16000), 2)
    assert audio.tobytes() == expected_pcm(served.cam, seconds, seed=seed, class_label="low", cfg=2.0, k_inf=0.1)
