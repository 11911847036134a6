"""Paper artifacts rendered from recorded runs: one make_<artifact>() per table or figure."""
