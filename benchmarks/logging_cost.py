"""Logging cost: the MLflow writes of one trial as a share of the trial's wall time.

The trial is the one ``harness run`` runs inside a Ray worker (harness.trial.run_trial), done here in
this process without Ray so that every MLflow call can be timed: harness.tracking.TrialRun creates
the run (tags, the whole config as params, config.yaml, environment tags), ``log_epoch`` writes
each epoch's metrics in one ``log_batch``, ``log_final`` the end-of-trial numbers and ``finish``
the status, into a SQLite store (created beforehand, untimed: that happens once per store). The
trial trains ResNet-20 on CIFAR-10-format random images (real pickle format, temp folder) on one
torch thread. Wall time runs from the run's creation to its finish, as the run's own start and end
times do; checkpointing is left out (it is Tune's, see overhead.py), which makes the share larger,
not smaller. Figure: MLflow seconds / trial wall seconds in percent, target <= 1 %. Ends with one
JSON line.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, in_folder, loadavg, write_cifar10  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--train-images", type=int, default=2560, help="128 of them held out as val")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--quick", action="store_true", help="a tiny run that checks the script, not the figure")
    args = ap.parse_args(argv)
    if args.quick:
        args.train_images, args.epochs = 160, 2

    import ray  # noqa: F401  (a trial runs in a Ray worker, where ray is imported before its run is created)
    import torch

    from harness import tracking
    from harness.config import RunConfig
    from harness.train import Trainer

    torch.set_num_threads(1)
    mlflow_s = {"create_run_s": 0.0, "log_epoch_s": [], "log_final_s": 0.0, "finish_s": 0.0}
    with tempfile.TemporaryDirectory() as tmp, in_folder(tmp):  # MLflow writes run artifacts to ./mlruns
        tmp = Path(tmp)
        root = write_cifar10(tmp / "data", args.train_images, 128)
        cfg = RunConfig.from_dict({
            "data": {"dataset": "cifar10", "data_root": str(root), "val_size": 128},
            "model": {"name": args.model},
            "train": {"epochs": args.epochs, "batch_size": 128, "lr": 0.05, "milestones": [args.epochs],
                      "device": "cpu", "threads": 1}})
        store = f"sqlite:///{tmp / 'mlflow.db'}"
        tracking.check_reachable(store)  # creates the store's schema (once per store): untimed
        experiment_id = tracking.ensure_experiment(store, "bench_logging_cost")
        tags = {"sweep": "bench_logging_cost", "trial_id": "bench0", "row": "default", "seed": 0}
        load_before = loadavg()

        start = time.perf_counter()
        run = tracking.TrialRun(store, experiment_id, "bench", cfg.to_dict(), tags)
        mlflow_s["create_run_s"] = time.perf_counter() - start
        trainer = Trainer(cfg)

        def on_epoch(epoch, metrics):
            t = time.perf_counter()
            run.log_epoch(epoch, metrics)
            mlflow_s["log_epoch_s"].append(time.perf_counter() - t)

        result = trainer.run(on_epoch)
        results = {**result.metrics, **result.final}
        t = time.perf_counter()
        run.log_final(results, keys=result.final)
        mlflow_s["log_final_s"] = time.perf_counter() - t
        t = time.perf_counter()
        run.finish("FINISHED")
        mlflow_s["finish_s"] = time.perf_counter() - t
        wall_s = time.perf_counter() - start
        load = {"trial": {"before": load_before, "after": loadavg()}}
        logged = tracking.client(store).get_run(run.run_id).data.metrics  # the writes really landed
        assert logged["epoch_time_s"] > 0 and "log_total_s" not in logged

    total_s = (mlflow_s["create_run_s"] + sum(mlflow_s["log_epoch_s"]) + mlflow_s["log_final_s"]
               + mlflow_s["finish_s"])
    per_epoch = sum(mlflow_s["log_epoch_s"]) / len(mlflow_s["log_epoch_s"])
    fixed_s = total_s - sum(mlflow_s["log_epoch_s"])
    epoch_s = results["train_time_s"] / args.epochs
    return emit("mlflow_share_of_trial_pct", round(100 * total_s / wall_s, 3), 1.0, "lower",
                mlflow_total_s=round(total_s, 3), trial_wall_s=round(wall_s, 2),
                mlflow_s={"create_run_s": round(mlflow_s["create_run_s"], 3),
                          "log_epoch_s_each": [round(v, 4) for v in mlflow_s["log_epoch_s"]],
                          "log_final_s": round(mlflow_s["log_final_s"], 4), "finish_s": round(mlflow_s["finish_s"], 4)},
                per_epoch_log_s=round(per_epoch, 4), fixed_per_run_s=round(fixed_s, 3),
                # the same writes at the papers' trial shape (e.g. 120 epochs of this epoch length)
                share_pct_at_120_epochs_of_this_length=round(100 * (fixed_s + 120 * per_epoch)
                                                             / (120 * (epoch_s + per_epoch) + fixed_s), 3),
                setup={"model": args.model, "train_images": args.train_images - 128, "epochs": args.epochs,
                       "batch_size": 128, "torch_threads": 1, "device": "cpu", "store": "sqlite (local file)"},
                metrics_per_epoch=len([k for k, v in results.items() if isinstance(v, (int, float))]),
                load=load)


if __name__ == "__main__":
    main()
