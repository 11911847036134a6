"""The CRnet artifacts end to end at their smoke profiles, in depth, on real Ray and MLflow.

conftest's ``smoke_all`` runs and reports every sweep file once per test run (the eight CRnet
tables, Figure 3.1 and the exp x g sweep among them) and test_sweep checks that each artifact is
written; these tests read two of them and check what they contain: the logged
counts against the built model, the published values beside ours, Table 3-1 from the model, the
latency figure (from the timed trials of jiang_crnet_latency), and Figure 3.1 drawn from the weights the trial saved.
"""
from pathlib import Path

import pytest

from harness_analysis.jiang_crnet import row_label
from harness import runs as recorded, catalog, models, tracking
from harness.measure import profile

pytestmark = pytest.mark.slow


def test_table_4_1_smoke_logs_the_built_models_counts_beside_the_papers(smoke_all):
    store, out = smoke_all.store, smoke_all.reports
    assert smoke_all.rc["jiang_table_4_1"] == (0, 0)
    runs = recorded.load_runs("jiang-table-4-1", store)
    (cell,) = catalog.resolve("jiang-table-4-1")[0].cells("smoke")
    assert len(runs) == 1 and set(runs["status"]) == {"FINISHED"}
    run = runs.iloc[0]
    assert run["row"] == cell.row == row_label(4, 2, 0.5, "gc-c1dw")
    # the trial's counts are those of the model it built for digits (1x8x8, 10 classes)
    built = profile(models.build("crnet_cb", num_classes=10, in_channels=1, image_size=8, exp=4, g=2, alpha=0.5,
                                 strategy="gc-c1dw"), (1, 8, 8))
    assert (run["params"], run["macs"]) == (built["params"], built["macs"])

    table = (out / "jiang-table-4-1.md").read_text()
    assert "27.36" in table and "91.46" in table and "27.3597" in table  # paper FLOPs, paper acc, our MACs
    assert f"{run['test_acc']:.2f} (n=1)" in table
    assert "digits instead of the paper's cifar10" in table and "multiply-adds" in table
    assert "MACs M (as trained)" in table  # digits is not the paper's 3x32x32
    assert "conv5-x" in (out / "jiang-table-3-1.md").read_text()
    figure = (out / "jiang-figure-crnet-cifar10.md").read_text()
    assert "No runs yet" not in figure  # smoke_all ran 4-1, 4-2, 4-5, 4-6
    # the latency panels read the timed trials of jiang_crnet_latency, which smoke_all ran too
    assert "recorded by the trials of sweep jiang_crnet_latency" in figure and "4 of 4 points have one" in figure
    assert "Inputs: digits 1×8×8" in figure
    assert (out / "jiang-figure-crnet-cifar10.png").stat().st_size > 10_000


def test_figure_3_1_smoke_draws_the_saved_resnet56(smoke_all):
    store, out = smoke_all.store, smoke_all.reports
    assert smoke_all.rc["jiang_figure_3_1"] == (0, 0)
    runs = recorded.load_runs("jiang-figure-3.1", store)
    assert len(runs) == 1 and set(runs["status"]) == {"FINISHED"}
    run_id = runs["run_id"].iloc[0]
    artifacts = [a.path for a in tracking.client(store).list_artifacts(run_id)]
    assert "model.pt" in artifacts
    model = recorded.load_model(run_id, store)
    assert type(model).__name__ == "ResNetCifar" and len(model.layer1) == 9  # ResNet-56: 9 blocks a stage
    notes = (out / "jiang-figure-3.1.md").read_text()
    assert "before BN and ReLU" in notes and "Red frames" in notes and "1 -> 16" in notes
    assert Path(out / "jiang-figure-3.1.png").stat().st_size > 10_000


def _check_table_4_13(store: str, out: Path) -> None:
    """jiang_table_4_13 at smoke: the logged lr is cosine_iter's at each epoch's last step, the cosine at
    (e - 1 + (n_e - 1) / n_e) / 5 for every row, full or reduced (n_e batches); Table 4-14 prints the
    paper's -0.74, with the recomputation in its notes."""
    from harness.schedules import cosine_factor

    runs = recorded.load_runs("jiang_table_4_13", store, status="FINISHED")
    assert len(runs) == 4 and set(runs["config.train.schedule"]) == {"cosine_iter"}
    client = tracking.client(store)
    for run_id in runs["run_id"]:
        history = sorted(client.get_metric_history(run_id, "lr"), key=lambda p: p.step)
        batches = [int(p.value) for p in sorted(client.get_metric_history(run_id, "batches"), key=lambda p: p.step)]
        assert [p.value for p in history] == pytest.approx([0.05 * cosine_factor(e + (n - 1) / n, 5)
                                                            for e, n in enumerate(batches)])
    analysis = (out / "jiang-table-4-14.md").read_text()
    r1 = next(line for line in analysis.splitlines() if line.startswith("| M-Net v2 R1_0.8 "))
    assert r1.split("|")[2].strip() == "-0.74" and r1.split("|")[6].strip() == "-19.65"
    assert "except R1_0.8 Top1↑: printed -0.74, recomputed -0.7346." in analysis
    assert "train.schedule cosine_iter" in (out / "jiang-table-4-13.md").read_text()


def test_table_4_13_smoke_steps_the_cosine_per_iteration_and_prints_table_4_14(smoke_all):
    assert smoke_all.rc["jiang_table_4_13"] == (0, 0)
    _check_table_4_13(smoke_all.store, smoke_all.reports)
