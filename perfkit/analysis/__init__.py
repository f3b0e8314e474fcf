"""Pure functions over the nouns, no I/O: statistics, accuracy against a reference, the verdict (speed-ups,
budget, the pick, diagnoses), where a GPU row's nodes ran, and the comparison of two runs."""
