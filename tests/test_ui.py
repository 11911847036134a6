"""The MLflow UI in a real browser (issue 7, point 6): `harness ui` serving a store that holds the
Jiang Table 4-9 smoke sweep, driven by headless Chromium through Selenium.

The test opens the sweep's experiment, checks every run is listed with its params and a metric
(as the store has them), opens one run's parameters and its `val_acc` chart, and saves a screenshot
of each page under $HARNESS_TEST_ARTIFACTS (default: test-artifacts/ in the repository) / ui/.
It needs Debian's `chromium` and `chromium-driver` (`make test` installs them when run as root)
and skips, saying so, without them; Selenium uses that chromedriver and never downloads one (tests/browser.py).
"""
from __future__ import annotations

import pytest

from harness import tracking

from . import procs
from .browser import WAIT_S, browser, needs_chromium, screenshot  # noqa: F401 (browser: a fixture)
from .smoke_store import smoke_store

SWEEP = "jiang_table_4_9"
RUN_NAME = "Re-impl.-seed0"  # the baseline row's run; its sampler is `full`
# MLflow 3 opens in its GenAI view by default; runs, params and metric charts live in this one.
TRAINING_VIEW = "workflowType=machine_learning"

pytestmark = [pytest.mark.slow, needs_chromium]


@pytest.fixture(scope="module")
def store_uri(ray_session, tmp_path_factory):
    return smoke_store(tmp_path_factory, [SWEEP])


@pytest.fixture(scope="module")
def ui_url(store_uri, tmp_path_factory):
    """`harness ui --tracking-uri STORE --port P`, stopped by its process group at the end."""
    log = tmp_path_factory.mktemp("harness_ui") / "harness-ui.log"
    port = procs.free_port()
    proc = procs.start([str(procs.BIN / "harness"), "ui", "--tracking-uri", store_uri, "--port", str(port)], log,
                       env={"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    try:
        url = f"http://127.0.0.1:{port}"
        procs.wait_http(url + "/health", proc, log, timeout_s=120)  # it took 35 s on 2 cores shared with other jobs
        yield url
    finally:
        procs.stop(proc)


def _grid_rows(driver) -> dict[str, dict[str, str]]:
    """The runs table as {run name: {column id: cell text}} (a row's pinned and scrolled parts joined)."""
    by_index = driver.execute_script("""
        const rows = {};
        document.querySelectorAll("[role=row][row-index]").forEach(row => {
          const cells = rows[row.getAttribute("row-index")] ||= {};
          row.querySelectorAll("[col-id]").forEach(c => { cells[c.getAttribute("col-id")] = c.innerText; });
        });
        return rows;""")
    out = {}
    for cells in by_index.values():
        name = cells.get("attributes.`Run Name`", "").split("\n")[-1]  # after the run's colour swatch
        if name:
            out[name] = cells
    return out


def test_mlflow_ui_lists_runs_params_and_charts(ui_url, store_uri, browser, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    client = tracking.client(store_uri)
    exp = client.get_experiment_by_name(SWEEP)
    runs = {r.info.run_name: r for r in client.search_runs([exp.experiment_id])}
    assert len(runs) == 6 and RUN_NAME in runs
    wait = WebDriverWait(browser, WAIT_S)

    def page_text():
        return browser.find_element(By.TAG_NAME, "body").text

    # The assistant side panel opens itself on a first visit and would cover the page.
    browser.get(ui_url + "/#/")
    browser.execute_script("localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                           "localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');")

    # 1. The sweep's experiment lists every run; columns chosen the way a user does, in "Columns".
    browser.get(f"{ui_url}/#/experiments/{exp.experiment_id}/runs?{TRAINING_VIEW}")
    wait.until(lambda _: all(name in page_text() for name in runs))
    browser.find_element(By.XPATH, "//button[normalize-space(.)='Columns']").click()
    search = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "input[placeholder='Search columns']")))
    for column in ("sampler.name", "train.epochs", "val_acc"):
        search.send_keys(Keys.CONTROL, "a")  # a modifier stays down to the end of one send_keys call
        search.send_keys(Keys.BACKSPACE)
        search.send_keys(column)
        wait.until(EC.element_to_be_clickable(
            (By.XPATH, f"//*[@role='dialog']//*[strong and normalize-space(.)='{column}']"))).click()
    search.send_keys(Keys.ESCAPE)
    wait.until(EC.invisibility_of_element_located((By.CSS_SELECTOR, "input[placeholder='Search columns']")))
    wait.until(lambda _: len(_grid_rows(browser)) == len(runs)
               and all("params.`sampler.name`" in cells for cells in _grid_rows(browser).values()))
    table = _grid_rows(browser)
    for name, run in runs.items():
        cells = table[name]
        assert cells["params.`sampler.name`"] == run.data.params["sampler.name"], name
        assert cells["params.`train.epochs`"] == run.data.params["train.epochs"] == "5", name
        assert float(cells["metrics.`val_acc`"]) == pytest.approx(run.data.metrics["val_acc"], abs=0.01), name
    assert {cells["params.`sampler.name`"] for cells in table.values()} == {"full", "flat", "three_stage"}
    screenshot(browser, "experiment-runs.png", capsys)

    # 2. One run's page: its parameters table, narrowed to the sampler.
    run = runs[RUN_NAME]
    browser.get(f"{ui_url}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}?{TRAINING_VIEW}")
    params_search = wait.until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "input[placeholder='Search parameters']")))
    params_search.send_keys("sampler")
    param_row = wait.until(EC.visibility_of_element_located(
        (By.XPATH, "//*[@role='row'][.//*[normalize-space(text())='sampler.name']]")))
    assert param_row.text.split("\n") == ["sampler.name", "full"]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", params_search)
    screenshot(browser, "run-parameters.png", capsys)

    # 3. Its val_acc chart: a Plotly line with one point per epoch.
    browser.get(f"{ui_url}/#/experiments/{exp.experiment_id}/runs/{run.info.run_id}/model-metrics?{TRAINING_VIEW}")
    charts_search = wait.until(EC.visibility_of_element_located(
        (By.CSS_SELECTOR, "input[placeholder='Search metric charts']")))
    charts_search.send_keys("val_acc")
    card_xpath = "//*[@data-testid='experiment-view-compare-runs-card'][.//h4[@title='val_acc']]"
    card = wait.until(EC.visibility_of_element_located((By.XPATH, card_xpath)))
    epochs = [p.step for p in client.get_metric_history(run.info.run_id, "val_acc")]
    assert epochs == [1, 2, 3, 4, 5]
    wait.until(lambda _: len(card.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer path.point"))
               == len(epochs))
    assert card.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .scatterlayer path.js-line")
    assert f"{RUN_NAME} (val_acc)" in card.text  # the legend names the run and the metric
    screenshot(browser, "run-val_acc-chart.png", capsys)
