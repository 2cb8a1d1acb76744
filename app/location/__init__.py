"""The location framework: matching location names against the bundled gazetteer."""
