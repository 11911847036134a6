"""`harness site` in a real browser, and `harness export` of the suite's smoke store (issue 26).

The first two read conftest's ``smoke_all`` (every sweep run at smoke into one store), so they train nothing of
their own; they are slow because that fixture is. The site is rendered once for the module, then opened
from disk in headless Chromium (tests/browser.py): every link of every page resolves (a local file that
exists, an anchor the target page has), every image loads, the index lists every artifact that has
finished runs (and every count table), and Çallı's Sec. 3.3.1 table shows the published top-1 beside
ours. Screenshots of the index and that page go beside the MLflow UI test's (test-artifacts/ui/).
A third test, fast, renders a user's sweep folder of another paper (one count figure) without any run.
"""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from harness import catalog, cli, exportfile as export, runs

from .browser import browser, needs_chromium, screenshot  # noqa: F401 (browser: a fixture)

MLFLOW_URL = "http://127.0.0.1:5000"  # nothing serves it here: the run links are checked for their form only
PUBLISHED_PAGE = "calli-section-3-3-1"  # a table of runs with the paper's column beside ours
OUR_ROW = "Our Model (separable ResNet-34)"


@pytest.fixture(scope="module")
def site_dir(smoke_all, tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    assert cli.main(["site", "--tracking-uri", smoke_all.store, "--out", str(out), "--mlflow-url", MLFLOW_URL]) == 0
    return out


def _with_runs(store: str) -> set:
    """Every artifact the site must show: a count table, or one whose sweep has FINISHED runs."""
    shown = set()
    for sweep in catalog.all_sweeps().values():
        finished = runs.load_runs(sweep.name, store, status="FINISHED")
        shown.update(a.id for a in sweep.artifacts if not a.runs or not finished.empty)
    return shown


def _page_links(driver) -> tuple[list, list]:
    """(every a[href] as the page wrote it, every img as {src, loaded, width})."""
    links = driver.execute_script("return Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))")
    images = driver.execute_script("""return Array.from(document.images, i =>
        ({src: i.getAttribute('src'), loaded: i.complete, width: i.naturalWidth}))""")
    return links, images


@needs_chromium
def test_the_site_opens_from_disk_with_every_link_and_image_working(site_dir, smoke_all, browser, capsys):
    from selenium.webdriver.common.by import By

    index = site_dir / "index.html"
    browser.get(index.as_uri())
    listed = {Path(h).stem for h in browser.execute_script(
        "return Array.from(document.querySelectorAll('table.index a'), a => a.getAttribute('href'))")}
    expected = _with_runs(smoke_all.store)
    assert listed == expected, (listed ^ expected)
    assert len(expected) > 20
    screenshot(browser, "site-index.png", capsys)

    seen, queue, anchors = set(), [index], []
    while queue:  # every page reachable from the index, each opened once in Chromium
        page = queue.pop()
        if page in seen:
            continue
        seen.add(page)
        browser.get(page.as_uri())
        links, images = _page_links(browser)
        for img in images:
            assert img["loaded"] and img["width"] > 0, (page.name, img["src"])
        for href in links:
            if href.startswith("http"):
                assert href.startswith(f"{MLFLOW_URL}/#/experiments/"), (page.name, href)
                continue
            target = urlparse(href)
            path = (page.parent / unquote(target.path)).resolve() if target.path else page
            assert path.is_file(), (page.name, href)
            if path.suffix == ".html":
                queue.append(path)
                if target.fragment:
                    anchors.append((path, target.fragment, page.name))
    for path, fragment, source in anchors:  # each anchor exists on its page, as Chromium parsed it
        browser.get(path.as_uri())
        assert browser.execute_script("return document.getElementById(arguments[0]) !== null", fragment), \
            (source, path.name, fragment)
    assert {p.stem for p in seen} >= expected | {"index", "cross", "fidelity"}

    # The published value beside ours: the paper's top-1 (analysis/published/calli_studies.yaml) and our
    # best smoke run's test accuracy (the table prints the max, two decimals), in one row.
    from harness_analysis.calli_studies import _IMAGENET

    browser.get((site_dir / f"{PUBLISHED_PAGE}.html").as_uri())
    table = browser.find_element(By.CSS_SELECTOR, "main table.sortable")
    header = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    paper = header.index("top-1 % (paper)")
    assert header[paper + 1].startswith("top-1 % (ours, ")
    row = next(tr for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")
               if tr.find_element(By.TAG_NAME, "td").text == OUR_ROW)
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[paper] == str(_IMAGENET["calli_resnet34"]["top1"]) == "63"
    finished = runs.load_runs(PUBLISHED_PAGE, smoke_all.store, status="FINISHED")
    assert cells[paper + 1] == f"{finished.loc[finished['row'] == 'calli_resnet34', 'test_acc'].max():.2f}"
    screenshot(browser, "site-artifact.png", capsys)

    # a click on a header sorts its table by that column as numbers (sort.js), a second click reverses it
    browser.get(index.as_uri())
    table = max(browser.find_elements(By.CSS_SELECTOR, "table.index"),
                key=lambda t: len(t.find_elements(By.CSS_SELECTOR, "tbody tr")))
    runs_header = next(th for th in table.find_elements(By.CSS_SELECTOR, "thead th") if th.text == "Runs")
    column = [th.text for th in table.find_elements(By.CSS_SELECTOR, "thead th")].index("Runs")

    def counts():
        texts = [tr.find_elements(By.TAG_NAME, "td")[column].text for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
        return [int(t) for t in texts if t.isdigit()]

    assert len(set(counts())) > 1  # something to sort
    runs_header.click()
    assert counts() == sorted(counts())
    runs_header.click()
    assert counts() == sorted(counts(), reverse=True)


def test_an_export_of_the_smoke_store_round_trips(smoke_all, tmp_path):
    every = tmp_path / "all.parquet"
    assert cli.main(["export", "--all", "--out", str(every), "--tracking-uri", smoke_all.store]) == 0
    sweeps = list(catalog.all_sweeps().values())
    expected = pd.concat([f for f in (runs.load_runs(s.name, smoke_all.store, history=True) for s in sweeps)
                          if not f.empty], ignore_index=True)
    got = runs.load_export(every)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for column in expected:
        assert [type(v) for v in got[column]] == [type(v) for v in expected[column]], column
    assert set(export.read_metadata(every)["sweeps"]) == {s.name for s in sweeps}
    # every metric the trainer logs each epoch is a column, and real trained epochs fill each of them
    trained = expected[expected["epoch"].notna() & expected["status"].eq("FINISHED")]
    assert [c for c in expected if c.startswith("epoch.")] == [f"epoch.{m}" for m in runs.EPOCH_METRICS]
    assert not trained[[f"epoch.{m}" for m in runs.EPOCH_METRICS]].isna().all().any()
    one = tmp_path / "one.csv"  # one sweep, as CSV: load_runs' frame with its history
    assert cli.main(["export", "calli_table_3_1", "--out", str(one), "--format", "csv",
                     "--tracking-uri", smoke_all.store]) == 0
    expected = runs.load_runs("calli_table_3_1", smoke_all.store, history=True)
    pd.testing.assert_frame_equal(runs.load_export(one), expected, check_exact=True)


def test_a_plugin_papers_count_figure_gets_its_own_section_and_page(store, tmp_path, monkeypatch, capsys):
    """Fast (no runs, no browser): a user's sweep folder ($HARNESS_SWEEPS) of another paper, one count figure."""
    import yaml

    from harness import tracking

    folder = tmp_path / "mine"
    folder.mkdir()
    sweep = {"name": "plugin_counts", "paper": "someone-2027",
             "artifacts": [{"id": "someone-figure-1", "kind": "figure", "number": "1", "runs": False,
                            "report": "harness_analysis.zheng:make_figure_5b", "title": "Momentum (analytic)"}],
             "base": {"model": {"name": "resnet20"}}, "profiles": {"paper": {}, "quick": {}, "smoke": {}}}
    (folder / "counts.yaml").write_text(yaml.safe_dump(sweep))
    monkeypatch.setenv("HARNESS_SWEEPS", str(folder))
    tracking.client(store).search_experiments()  # an existing, empty store
    out = tmp_path / "site"
    assert cli.main(["site", "--tracking-uri", store, "--out", str(out)]) == 0
    assert f"site of 1 artifacts (0 without runs) in {out}" in capsys.readouterr().out
    index = (out / "index.html").read_text()
    assert '<section id="paper-someone-2027">' in index and f"(plugin: {folder / 'counts.yaml'})" in index
    assert '<a href="someone-figure-1.html">someone-figure-1</a>' in index
    page = (out / "someone-figure-1.html").read_text()
    assert '<img src="files/someone-figure-1.png"' in page and (out / "files" / "someone-figure-1.png").stat().st_size
    assert "Counted from the built models" in page
    assert "fidelity.html#" not in page and not (out / "cross.html").exists()  # no section of its own; no cross sweep
