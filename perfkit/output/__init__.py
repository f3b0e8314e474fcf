"""What users read and keep: units, the table / markdown / csv / json renderings, the HTML report, plain-text
lines of `compare` and `history`, and the store of runs."""

FORMATS = ("table", "json", "csv", "markdown")  # here, not in render.py, so `perfkit --help` stays light
