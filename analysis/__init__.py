"""Paper artifacts rendered from recorded runs: one parametrized make_<kind>() builder per kind of table or
figure (its parameters in the artifact's ``options:``), the papers' numbers in published/."""
