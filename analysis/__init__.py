"""Paper artifacts rendered from recorded runs: one parametrized make_<kind>() builder per kind of table or
figure (its parameters in the artifact's ``options:``), the papers' numbers in published/.

Installed, and imported, as ``harness_analysis`` (pyproject.toml's package-dir; harness/shipped.py finds it in
a checkout): the folder keeps the repository's layout, the package a name no other distribution takes.
"""

if __name__ != "harness_analysis":  # the folder imported by its own name, a checkout's cwd on sys.path: a second
    # copy of every module would register and cache twice, so the old name is refused rather than duplicated
    raise ImportError(f"the report package is harness_analysis now, not {__name__}: "
                      "import harness_analysis (from harness_analysis import jiang, ...)", name=__name__)
