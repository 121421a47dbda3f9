"""report.html: a self-contained page about a run, written at the end of every run and by `crossfuse report`."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cli_runner import assert_usage_error, crossfuse

CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """One tiny finance run (two epochs, so the curves have a line to draw)."""
    from crossfuse.testing import smoke_fit

    return smoke_fit("finance-sentiment", tmp_path_factory.mktemp("html") / "run", epochs=2,
                     overrides=["train.batch_size=64", "train.lr=1e-3", "train.log_every=2",
                                "train.tensorboard=false"])


@pytest.fixture(scope="module")
def page(tiny):
    return (tiny.run_dir / "report.html").read_text(encoding="utf-8")


def copy_of(run_dir, folder):
    """A copy of the run without its weights (the report reads only the small files)."""
    return Path(shutil.copytree(run_dir, folder, ignore=shutil.ignore_patterns("checkpoints", "backbone")))


def test_every_run_writes_report_html_beside_report_json(tiny):
    assert (tiny.run_dir / "report.html").is_file()
    assert (tiny.run_dir / "report.html").stat().st_mtime >= (tiny.run_dir / "report.json").stat().st_mtime - 1


def test_the_page_holds_the_metrics_of_every_split_and_the_baseline(tiny, page):
    for split, metrics in tiny.report["splits"].items():
        assert f"<th>{split}</th>" in page
        assert f"{metrics['macro_f1']:.4f}" in page and f"{metrics['accuracy']:.4f}" in page
    baseline = tiny.report["baseline"]
    assert f"baseline {baseline['name']} test" in page
    assert f"{baseline['splits']['test']['macro_f1']:.4f}" in page


def test_the_main_metric_row_is_highlighted(tiny, page):
    main = tiny.report["main_metric"]
    assert re.search(rf'<tr class="main"><th>{main}</th>', page)
    assert page.count('<tr class="main">') == 1


def test_per_class_values_and_the_confusion_matrix_are_tables(tiny, page):
    per_class = tiny.report["splits"]["test"]["per_class"]
    assert "<h4>per_class</h4><table>" in page and "<h4>confusion_matrix</h4>" in page
    for label, row in per_class.items():
        assert f"<th>{label}</th><td>{row['precision']:.4f}</td>" in page


def test_every_picture_is_embedded_as_a_data_uri(tiny, page):
    assert tiny.report["pictures"]
    for name in tiny.report["pictures"]:
        encoded = base64.b64encode((tiny.run_dir / name).read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{encoded}"' in page


def test_the_curves_are_inline_svg_drawn_from_metrics_jsonl(tiny, page):
    records = [json.loads(line) for line in (tiny.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    loss_chart = re.search(r'<svg class="chart"[^>]*aria-label="training loss">.*?</svg>', page, re.S).group(0)
    assert loss_chart.count("<circle") == len(train) > 2
    assert 'aria-label="learning rate"' in page
    assert 'aria-label="macro_f1 per epoch (main metric)"' in page


def test_the_page_references_no_external_resource(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page and "@import" not in page and "url(" not in page
    assert "<link" not in page


def test_the_resolved_config_and_the_data_summary_are_shown(tiny, page):
    assert "Resolved config" in page and "batch_size: 64" in page
    assert "<h2>Data</h2>" in page and "negative, neutral, positive" in page


def test_special_characters_are_escaped(tiny, tmp_path):
    run_dir = copy_of(tiny.run_dir, tmp_path / "run")
    report = json.loads((run_dir / "report.json").read_text())
    per_class = report["splits"]["test"]["per_class"]
    per_class["<script>alert(1)</script>"] = per_class.pop("negative")
    report["data"]["labels"] = ["<b>bold</b> & co"]
    (run_dir / "report.json").write_text(json.dumps(report))
    assert crossfuse("report", run_dir).returncode == 0
    text = (run_dir / "report.html").read_text()
    assert "<script" not in text and "<b>bold</b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in text


def test_a_run_without_metrics_jsonl_or_pictures_still_gets_a_report(tiny, tmp_path):
    run_dir = copy_of(tiny.run_dir, tmp_path / "bare")
    (run_dir / "metrics.jsonl").unlink()
    for name in tiny.report["pictures"]:
        (run_dir / name).unlink()
    report = json.loads((run_dir / "report.json").read_text())
    report.pop("pictures")
    (run_dir / "report.json").write_text(json.dumps(report))
    result = crossfuse("report", run_dir)
    assert result.returncode == 0, result.stderr
    text = (run_dir / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "No metrics.jsonl records to draw" in text and "data:image" not in text
    assert f"{report['splits']['test']['macro_f1']:.4f}" in text


def test_a_run_that_has_not_finished_gets_a_report_saying_so(tiny, tmp_path):
    run_dir = copy_of(tiny.run_dir, tmp_path / "unfinished")
    (run_dir / "report.json").unlink()
    (run_dir / "report.html").unlink()
    assert crossfuse("report", run_dir).returncode == 0
    text = (run_dir / "report.html").read_text()
    assert 'class="status-incomplete">incomplete' in text and "has not finished" in text
    assert 'aria-label="training loss"' in text


def test_report_output_writes_elsewhere_and_refuses_to_overwrite(tiny, tmp_path):
    target = tmp_path / "page.html"
    assert crossfuse("report", tiny.run_dir, "--output", target).returncode == 0
    assert target.read_text() == (tiny.run_dir / "report.html").read_text()
    assert_usage_error(crossfuse("report", tiny.run_dir, "--output", target), str(target), "--overwrite")
    assert crossfuse("report", tiny.run_dir, "--output", target, "--overwrite").returncode == 0


def test_report_of_a_folder_that_is_not_a_run_is_a_usage_error(tmp_path):
    assert_usage_error(crossfuse("report", tmp_path), "not a crossfuse run directory")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install -y chromium) to render "
                                                  "the page; docs/report_screenshot.sh does the same by hand")
def test_the_page_renders_in_a_headless_browser(tiny, tmp_path):
    from PIL import Image

    shot = tmp_path / "shot.png"
    subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1280,2000",
                    (tiny.run_dir / "report.html").resolve().as_uri()], capture_output=True, timeout=120, check=True)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 2000)
    colours = image.getcolors(maxcolors=1 << 20)
    assert len(colours) > 200  # text, tables, curves and the embedded pictures; a blank page has a handful
    background = max(colours)[0] / (1280 * 2000)
    assert background < 0.95  # not an empty white page
