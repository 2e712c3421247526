"""The ecosystem's own clients, run in their own venv (.venv-ecosystem) by the protocol tests.

`venv.run_script` runs one of the scripts here with that venv's python and returns the JSON it
prints; setup.sh makes the venv from requirements*.txt and check_env.py checks it.
"""
