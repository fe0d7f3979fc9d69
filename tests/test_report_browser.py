"""The HTML report opened in a real headless browser (Chromium); skipped where none is installed
(`apt-get install chromium` on Debian/Ubuntu)."""
import shutil
import subprocess
from pathlib import Path

import pytest

from recoque.report import build_report, write_report

FIX = Path(__file__).parent / "fixtures"
BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(BROWSER is None, reason="no Chromium installed")
def test_report_renders_in_headless_chromium(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    rep = build_report([str(FIX / "compare_a.json")])
    page = tmp_path / "report.html"
    write_report(rep, str(page))
    shot = tmp_path / "shot.png"
    cmd = [BROWSER, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1600",
           f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, capture_output=True, timeout=120, check=False)
    assert shot.exists(), "the browser wrote no screenshot"
    pixels = image.imread(str(shot))
    assert pixels.shape[0] == 1600 and pixels.shape[1] == 1280
    # a rendered page, not a blank one: the title rule, tables and text give many distinct shades
    assert pixels[..., :3].std() > 0.05
    assert len({tuple(p) for p in pixels[::40, ::40, :3].reshape(-1, 3).round(2)}) > 20
