"""Statistics oracles that run in their own venv (.venv-oracle): NannyML's CBPE (nannyml_cbpe.py)."""
