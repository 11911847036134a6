"""What each measurable protocol reading of issue 27 changes: two rows x three seeds, mean ± std, as Markdown.

Every item of docs/fidelity.md that carries a ``MEASURE(<item-id>)`` placeholder is one entry of
``ITEMS``: a sweep's quick profile, one of its rows, and two readings (ours first), each a list of
``--set`` overrides applied to that row's quick cell (``Sweep.cells``, then the overrides, checked as
``harness run`` checks a cell), and trained in this process through the harness's Python API (``harness.train.train``: no Ray, no MLflow store), on datasets every machine here
has: Fashion-MNIST (``/usr/share/datasets/fashion-mnist``) where the paper used it, scikit-learn's
digits otherwise (``--dataset digits``). The table gives, per reading, the metric's mean ± sample std
over the seeds, the difference of the means (ours − the other), and the wall seconds of its runs;
then the machine and versions. Cells equal in config digest are trained once (two items may share a
row). Wall time on 2 free CPU cores: about 15 minutes in all, an estimate from the workloads' sizes and
the per-epoch times recorded in docs/fidelity.md, not yet run (the calli_cifar runs on digits are the
largest share, about 7 minutes; see each item's comment).

    .venv/bin/python benchmarks/protocol_readings.py                    # every item, seeds 0 1 2
    .venv/bin/python benchmarks/protocol_readings.py --only zheng-dropout --seeds 0
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import loadavg, machine  # noqa: E402


@dataclass(frozen=True)
class Item:
    id: str  # the MEASURE(<id>) placeholder it fills in docs/fidelity.md
    sweep: str
    row: str
    readings: tuple  # ((label, [--set overrides]), ...): ours first
    metric: str  # a key of harness.train.train's result
    dataset: str | None = None  # --dataset; None: the quick profile's own
    common: tuple = ()  # --set overrides both readings share (shortened further than quick: say why)
    note: str = ""
    extra: tuple = field(default=())  # further result keys printed beside the metric


ITEMS = (
    # alexnet_fmnist at 1/16 width, 3 epochs on 3,000 Fashion-MNIST images: seconds a run.
    Item("zheng-dropout", "zheng_table_1", "c_cnn-s0",
         (("dropout on the convs only (ours, Sec. 4.1)", ["model.options.head_dropout=0.0"]),
          ("also after the two hidden linear layers (before)", ["model.options.head_dropout=0.2"])),
         "test_acc", note="Fashion-MNIST, the paper's dataset"),
    # The same C-CNN pruned to 50 %: the quick profile's 3 epochs prune at the starts of epochs 2 and 3.
    Item("zheng-pruning", "zheng_table_1", "c_cnn-s50",
         (("conv and linear weights pruned (ours, include_linear true)", ["method.options.prune.include_linear=true"]),
          ("conv weights only", ["method.options.prune.include_linear=false"])),
         "test_acc", note="Fashion-MNIST", extra=("sparsity",)),
    # DBS cannot reach its momentum phase in the quick profile's 3 epochs (B_max = N/10 = 300 there): the
    # paper's 30 epochs on the quick profile's 3,000 images and 1/16 width, C-CNN + DBS at 30 % sparsity.
    Item("zheng-k-scale", "zheng_table_1", "c_cnn-dbs",
         (("k_scale 0.0272 (ours)", ["method.options.dbs.k_scale=0.0272"]),
          ("k_scale 1 (k in momentum and run-proportion units)", ["method.options.dbs.k_scale=1"])),
         "test_acc", common=("train.epochs=30",), note="Fashion-MNIST, 30 epochs"),
    # 2-1000-1 on 100,000 generated samples, at most 20 cycles: seconds a run.
    Item("calli-summation-cycle", "calli_summation", "variance-distortion",
         (("epochs_per_cycle 3 (paper profile)", ["method.options.epochs_per_cycle=3"]),
          ("epochs_per_cycle 1 (quick profile)", ["method.options.epochs_per_cycle=1"])),
         "nodes_1", extra=("test_rmse", "cycles"), note="generated data; metric: hidden nodes left"),
    # calli_cifar on 8x8 digits, 15 epochs at batch 64 (about 1,300 training images): the three items
    # below share the first reading's runs.
    Item("calli-weight-decay", "calli_table_3_2", "calli_cifar",
         (("weight decay 0.002, every parameter (ours)", ["train.weight_decay=0.002"]),
          ("weight decay 0.001 (the tutorial's l2_loss)", ["train.weight_decay=0.001"])),
         "test_acc", dataset="digits", note="digits; BN and biases decay in both rows"),
    Item("calli-blocks", "calli_table_3_2", "calli_cifar",
         (("blocks 1 / 2 / 3 (ours, 121,802 params)", ["train.weight_decay=0.002"]),
          ("blocks 2 / 2 / 2 (before, 88,586 params)", ["train.weight_decay=0.002", "model.options.blocks=[2, 2, 2]"])),
         "test_acc", dataset="digits", note="digits"),
    # ResNet-20 (the smoke profile's model) instead of quick's ResNet-56, to keep the script near 15
    # minutes; digits has no pad-and-crop default, so the augmented reading sets 1 px (4 px at 32 scaled
    # to 8); no flip either way (a digit is not mirror-symmetric; the harness's flip is per dataset).
    Item("jiang-augment", "jiang_table_4_9", "Re-impl.",
         (("pad-and-crop augmentation (ours: the harness default)", ["data.augment=true", "data.crop_padding=1"]),
          ("no augmentation", ["data.augment=false"])),
         "test_acc", dataset="digits", common=("model.name=resnet20",), note="digits, ResNet-20"),
)


def cell(item: Item, sets: list, seed: int) -> tuple[dict, str]:
    """(config, digest) of the quick profile's cell of the item's row with ``sets`` applied to it alone
    (``harness run --set`` would apply them to every row, and fails on a row whose model lacks the option)."""
    from harness import catalog
    from harness.checks import checked
    from harness.config import apply_overrides

    cells = catalog.all_sweeps()[item.sweep].cells("quick", dataset=item.dataset, sets=[f"train.seed={seed}"])
    row = next(c for c in cells if c.row == item.row)
    cfg = checked(apply_overrides(row.config, [*item.common, *sets]))
    return cfg.to_dict(), cfg.digest()


def run(item: Item, seeds, threads: int, cache: dict) -> list[dict]:
    from harness.train import train

    out = []
    for label, sets in item.readings:
        values, extras, seconds = [], {k: [] for k in item.extra}, 0.0
        for seed in seeds:
            config, digest = cell(item, sets, seed)
            if digest not in cache:
                start = time.perf_counter()
                result = train(config, threads=threads)
                cache[digest] = (result, time.perf_counter() - start)
            result, took = cache[digest]
            values.append(float(result[item.metric]))
            for k in item.extra:
                extras[k].append(float(result[k]))
            seconds += took
        out.append({"reading": label, "values": values, "extras": extras, "seconds": seconds})
    return out


def fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f} (n=1)"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f} (n={len(values)})"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", help="item ids (default: all): " + ", ".join(i.id for i in ITEMS))
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2, help="torch threads per run")
    ap.add_argument("--dry", action="store_true", help="resolve every cell and print what differs; train nothing")
    args = ap.parse_args(argv)
    items = [i for i in ITEMS if not args.only or i.id in args.only]
    unknown = set(args.only or ()) - {i.id for i in ITEMS}
    if unknown:
        ap.error(f"unknown items {sorted(unknown)}; known: {', '.join(i.id for i in ITEMS)}")
    if args.dry:
        from harness.config import flatten

        for item in items:
            ours, other = (flatten(cell(item, sets, args.seeds[0])[0]) for _, sets in item.readings)
            print(item.id, {k: (ours[k], other.get(k)) for k in ours if ours[k] != other.get(k)},
                  "| quick epochs", ours["train.epochs"], "| dataset", ours["data.dataset"])
        return
    cache: dict = {}
    began, load_before = time.perf_counter(), loadavg()
    print("| item | reading | metric | mean ± std | ours − other | seconds |\n|---|---|---|---|---|---|", flush=True)
    for item in items:
        rows = run(item, args.seeds, args.threads, cache)
        delta = statistics.mean(rows[0]["values"]) - statistics.mean(rows[1]["values"])
        for i, r in enumerate(rows):
            extra = "".join(f"; {k} {fmt(v)}" for k, v in r["extras"].items())
            print(f"| `{item.id}` ({item.note}) | {r['reading']} | {item.metric} | {fmt(r['values'])}{extra} | "
                  f"{f'{delta:+.2f}' if i == 0 else ''} | {r['seconds']:.0f} |", flush=True)
    m = machine()
    print(f"\nSeeds {args.seeds}, {args.threads} torch threads a run, {time.perf_counter() - began:.0f} s in all; "
          f"load average {load_before} before, {loadavg()} after.")
    print(f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['device']}; python {m['python']}, "
          f"torch {m['torch']}, torchvision {m['torchvision']}; {m['date']}; `{m['command']}`.")


if __name__ == "__main__":
    main()
