"""Every protocol key of a paper profile is declared where a reader looks (issue 27).

For each sweep of the five papers, the keys of its paper profile's cells that a reader has to be told
about are listed (``protocol_keys``): a key whose value differs from the harness's default (the
RunConfig field's, the model builder's or the method's own), and a key that acts on every trial left at
its default that the paper does not state (``ALWAYS``, less what ``STATED`` quotes from the seed text:
e.g. ``data.augment``, the harness's pad-and-crop and flip, which no Jiang experiment names). Each such
key must be named in the sweep file's comments (its own, or a file it ``extends``) or in a subsection of
docs/fidelity.md that names the sweep; the test fails on an undeclared one, and on a planted one in a
test copy of a sweep file. "Named" is the dotted key, or its last component as a word (underscores or
spaces; a short or generic one only through ``ALIASES``): a sweep's comment is about that sweep, so a
word is enough there, and a fidelity subsection counts only where it names the sweep.
"""
from __future__ import annotations

import inspect
import re
import shutil
from pathlib import Path

import pytest
import yaml

from harness import catalog
from harness.config import RunConfig, flatten
from harness.registry import EXPERIMENTS, MODELS, method_registry
from harness_analysis.report import FIDELITY_SECTIONS

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "fidelity.md"
SEEDS = ROOT.parent / "shared" / "seeds"
SEED_FILES = {"zheng": "000_c7321f4be5d60ab6.txt", "poellot": "001_cee262542942a8b3.txt",
              "calli": "002_7fd01c0de6b14536.txt", "jiang": "003_5d40fba980dec361.txt",
              "jin": "004_1e4f7f5494b4efef.txt"}

# Where a run's files live and how it executes, not what it trains: never a reading of a paper.
EXECUTION = {"data.data_root", "data.download", "data.split_seed", "data.loader", "data.resident_max_gb",
             "data.num_workers", "data.skip_corrupt", "data.decode_on_device", "data.resize_on",
             "train.device", "train.channels_last", "train.system_metrics", "train.threads", "train.save_model"}
# Keys that act on every trial that trains: left at the harness's default, they are still a protocol
# choice unless the paper states the value (STATED). A method's own options are added where it is used.
ALWAYS = ("data.augment", "data.val_size", "train.epochs", "train.batch_size", "train.lr", "train.momentum",
          "train.weight_decay", "train.schedule")
# Experiments generate or read their data themselves and run no optimizer of the Trainer's: these keys
# do not act in them (harness.methods.base: uses_dataset = False, or their own loop).
NOT_READ_BY_EXPERIMENTS = ("data.augment", "data.val_size", "train.schedule")
# Datasets whose augmentation defaults are none (crop_padding 0, no flip; harness/data/datasets.py):
# data.augment true changes nothing there.
UNAUGMENTED = ("mnist", "fashion_mnist", "digits")

# sweep -> key -> the seed's words that state the value the sweep uses at the harness default
# (each checked against the seed text below): such a key needs no declaration.
STATED = {
    "jiang_table_4_9": {"train.momentum": "with a momentum of 0.9"},
    "jiang_table_4_11": {"train.momentum": "with a momentum of 0.9"},
    "jiang_table_4_13": {"train.momentum": "momentum 0.9"},
}

# Words that name a key in prose (regular expressions matched as whole words, case-insensitive), beside
# the dotted key and, when it is long enough, its last component (an "s" may follow it).
ALIASES = {"lr": r"lr|learning rates?", "seed": r"seeds?", "epochs": r"epochs?", "augment": r"augment\w*",
           "batch_size": r"batch(es)?( sizes?)?", "val_size": r"held out|hold-out|holds? out|validation split",
           "schedule": r"schedules?|multistep|cosine\w*|constant", "momentum": r"momentum",
           "dropout": r"dropout", "width": r"widths?", "steps": r"steps", "blocks": r"blocks", "base": r"base",
           "conv": r"conv", "members": r"members", "alpha": r"alpha\w*|α", "gamma": r"gamma|γ", "se": r"se",
           "g": r"g", "exp": r"exp", "keep": r"keep", "bound": r"bound|band", "cached": r"cached",
           "warmup": r"warm-?up", "repeats": r"repeats"}
GENERIC = 5  # a last component this short (start, end, ...) is too common a word to name the key by itself
# keys that their value names (every value the paper profile takes): the dataset, the model, the method,
# the sampler, compared on letters and digits alone (ResNet-56 names resnet56)
BY_VALUE = ("data.dataset", "model.name", "method.name", "sampler.name")


_UNSET = object()  # an option with no default to compare with: always listed


def _defaults(builder) -> dict:
    return {k: p.default for k, p in inspect.signature(builder).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _option_leaves(prefix: str, options: dict, defaults: dict, chain: bool = False) -> dict:
    """prefix.option -> (value, its default) for every option set (_UNSET where there is no default to
    compare with: a member's own options, an empty sub-method). A chain's sub-methods are flattened one
    level deeper, their unset options included: a method's unset options act too."""
    out = {}
    for key, value in options.items():
        if chain and isinstance(value, dict):
            sub = _defaults(method_registry(key).get(key))
            out.update(_option_leaves(f"{prefix}.{key}", value, sub))
            if not value:
                out[f"{prefix}.{key}"] = (value, _UNSET)
            for name, default in sub.items():
                out.setdefault(f"{prefix}.{key}.{name}", (default, _UNSET))
        elif isinstance(value, dict):  # a member's own options (base_options): each leaf is set; {} sets nothing
            out.update(_option_leaves(f"{prefix}.{key}", value, {}))
        else:
            out[f"{prefix}.{key}"] = (value, defaults.get(key, _UNSET))
    return out


def protocol_keys(sweep: catalog.Sweep) -> dict[str, set]:
    """The keys of the paper profile a reader must be told about (see the module docstring), each with the
    values the profile's cells give it."""
    defaults = flatten(RunConfig().to_dict())
    stated = STATED.get(sweep.name, {})
    keys: dict[str, set] = {}

    def add(key, value):
        keys.setdefault(key, set()).add(repr(value) if isinstance(value, (list, dict)) else value)

    cells = sweep.cells("paper")
    for cell in cells:
        c = cell.config
        flat = flatten({section: c[section] for section in ("data", "sampler", "train")})
        for key, value in flat.items():  # train.seed is an axis: counted below
            if key not in EXECUTION and key != "train.seed" and value != defaults[key]:
                add(key, value)
        experiment = c["method"]["name"] in EXPERIMENTS
        for key in ALWAYS:
            if experiment and key in NOT_READ_BY_EXPERIMENTS:
                continue
            if key == "data.augment" and flat["data.dataset"] in UNAUGMENTED:
                continue
            add(key, flat[key])
        model, method = c["model"]["name"], c["method"]["name"]
        if model != defaults["model.name"]:
            add("model.name", model)
        if method != "none":
            add("method.name", method)
        own = _defaults(method_registry(method).get(method))
        options = {**_option_leaves("model.options", c["model"]["options"], _defaults(MODELS.get(model))),
                   **_option_leaves("method.options", c["method"]["options"], own, chain=method == "chain")}
        for key, (value, default) in options.items():
            if default is _UNSET or value != default:
                add(key, value)
        if method not in ("none", "chain"):  # a method's unset options act as well
            for name, default in own.items():
                if name not in c["method"]["options"]:
                    add(f"method.options.{name}", default)
    seeds = {cell.config["train"]["seed"] for cell in cells}
    if len(seeds) > 1:
        keys["train.seed"] = seeds
    return {k: v for k, v in sorted(keys.items()) if k not in stated}


def _comments(path: Path, seen=()) -> str:
    """The comments of a sweep file and of every file it extends."""
    text = path.read_text()
    out = "\n".join(m.group(1) for m in re.finditer(r"(?:^|\s)#(.*)$", text, re.M))
    parent = (yaml.safe_load(text) or {}).get("extends")
    if parent and path not in seen:
        out += "\n" + _comments((path.parent / parent).resolve(), (*seen, path))
    return out


def _parents(path: Path) -> list[str]:
    names, seen = [], set()
    while path not in seen:
        seen.add(path)
        spec = yaml.safe_load(path.read_text()) or {}
        names += [spec.get("name") or path.stem, path.stem]
        if not spec.get("extends"):
            break
        path = (path.parent / spec["extends"]).resolve()
    return names


def fidelity_text(doc: str, paper: str, names: list[str]) -> str:
    """The subsections of the paper's section of docs/fidelity.md that name one of ``names``."""
    pieces = re.split(r'<a id="(\w+)"></a>\n', doc)
    section = dict(zip(pieces[1::2], pieces[2::2])).get(paper, "")
    parts = re.split(r"\n(?=#{3,4} )", section)
    return "\n".join(p for p in parts if any(re.search(rf"\b{re.escape(n)}\b", p) for n in names))


def _squeezed(text) -> str:
    """Lower case, letters and digits only: ResNet-56 and resnet56, Fashion-MNIST and fashion_mnist meet."""
    return re.sub(r"[^0-9a-z]", "", str(text).lower())


def named(key: str, text: str, values=()) -> bool:
    """Whether ``text`` names ``key``: a dotted suffix of two or more components, the last component as a
    word (or an alias; a short one followed by its number), or for BY_VALUE keys every one of its ``values``."""
    parts = key.split(".")
    for i in range(len(parts) - 1):
        if re.search(rf"(?<![\w.]){re.escape('.'.join(parts[i:]))}\b", text):
            return True
    leaf = parts[-1]
    words = [ALIASES[leaf]] if leaf in ALIASES else []
    words.append(re.escape(leaf) + r"[ :=]+[-+\d.]")  # a short one as "start 0.2", "k = 1.6"
    if len(leaf) > GENERIC or "_" in leaf:
        words += [r"[_\s]+".join(map(re.escape, leaf.split("_"))) + "s?"]  # weight_decay, weight decay
    if key in BY_VALUE and all(_squeezed(v) in _squeezed(text) for v in values):
        return True
    return any(re.search(rf"(?<![\w.])(?:{w})(?!\w)", text, re.I) for w in words)


def undeclared(path: Path, doc: str) -> dict[str, list[str]]:
    """sweep name -> its protocol keys that neither its comments nor docs/fidelity.md name."""
    out = {}
    comments = _comments(path.resolve())
    for sweep in catalog.load_sweeps(path):
        if sweep.paper not in FIDELITY_SECTIONS or sweep.is_search:
            continue
        text = comments + "\n" + fidelity_text(doc, sweep.paper, [sweep.name, *_parents(path.resolve())])
        missing = [k for k, values in protocol_keys(sweep).items() if not named(k, text, values)]
        if missing:
            out[sweep.name] = missing
    return out


def _sweep_files() -> list[Path]:
    return sorted((ROOT / "sweeps").glob("*.yaml"))


@pytest.mark.parametrize("path", _sweep_files(), ids=lambda p: p.stem)
def test_every_protocol_key_of_the_paper_profile_is_declared(path):
    assert undeclared(path, DOC.read_text()) == {}, (
        "keys of the paper profile that differ from the harness's defaults, or that the paper does not state, "
        "and that neither the sweep file's comments nor a docs/fidelity.md subsection naming the sweep declare")


def test_a_planted_key_is_undeclared_until_its_comment_names_it(tmp_path):
    copy = tmp_path / "zheng_table_1.yaml"
    text = (ROOT / "sweeps" / "zheng_table_1.yaml").read_text()
    planted = text.replace("base:\n  data: {dataset: fashion_mnist,", "base:\n  data: {crop_padding: 2, dataset: fashion_mnist,")
    assert planted != text
    copy.write_text(planted)
    assert undeclared(copy, DOC.read_text()) == {"zheng_table_1": ["data.crop_padding"]}
    copy.write_text("# data.crop_padding 2: planted by the test\n" + planted)
    assert undeclared(copy, DOC.read_text()) == {}


def test_a_default_the_paper_does_not_state_is_undeclared_until_named(tmp_path):
    """Jiang names no augmentation: the harness default (data.augment true) must be declared; the planted copy
    loses every comment line that says so."""
    copy = tmp_path / "jiang_table_4_9.yaml"
    text = (ROOT / "sweeps" / "jiang_table_4_9.yaml").read_text()
    copy.write_text("\n".join(line for line in text.splitlines() if not re.search("augment", line, re.I)) + "\n")
    doc = "\n".join(line for line in DOC.read_text().splitlines() if not re.search("augment", line, re.I))
    assert undeclared(copy, doc) == {"jiang_table_4_9": ["data.augment"]}


@pytest.mark.skipif(not SEEDS.is_dir(), reason="the seed texts (../shared/seeds) are not beside this checkout")
def test_the_stated_values_are_in_the_seed_texts():
    sweeps = catalog.all_sweeps()
    for name, keys in STATED.items():
        seed = " ".join((SEEDS / SEED_FILES[sweeps[name].paper]).read_text().split())
        for key, words in keys.items():
            assert " ".join(words.split()) in seed, (name, key, words)


def test_a_stated_value_is_at_the_harness_default():
    sweeps = catalog.all_sweeps()
    for name, keys in STATED.items():
        for key in keys:
            value = flatten(sweeps[name].cells("paper")[0].config)[key]
            assert value == flatten(RunConfig().to_dict())[key], (name, key, "is not at the default: no STATED needed")


def test_the_check_reads_comments_of_the_files_a_sweep_extends(tmp_path):
    shutil.copy(ROOT / "sweeps" / "jiang_table_4_9.yaml", tmp_path / "jiang_table_4_9.yaml")
    (tmp_path / "child.yaml").write_text("extends: jiang_table_4_9.yaml\nname: child\n")
    assert "validation split" in _comments(tmp_path / "child.yaml")


def test_the_listed_keys_include_the_readings_only_the_code_knew():
    """The issue's examples are listed: Zheng's pruning schedule (prune's defaults), Jiang's augmentation
    (the harness default), Jin's seeds; an execution key never is."""
    sweeps = catalog.all_sweeps()
    zheng = protocol_keys(sweeps["zheng_table_1"])
    assert {"method.options.prune.start", "method.options.prune.end", "method.options.prune.include_linear",
            "method.options.prune.steps", "model.options.member_width"} <= set(zheng)
    assert zheng["train.weight_decay"] == {0.02, 0.002}
    assert "data.augment" in protocol_keys(sweeps["jiang_table_4_9"])
    assert protocol_keys(sweeps["jin_table_3_1"])["train.seed"] == {0, 1, 2}
    assert "train.seed" not in protocol_keys(sweeps["jiang_table_4_13"])  # one seed, as the text
    assert not set(protocol_keys(sweeps["poellot_accuracy"])) & EXECUTION
