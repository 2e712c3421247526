"""The always-valid statistics live in the client package (digits.experiments.sequential), shared by
the server's report and the fleet report; this name stays for bench/ab_peeking.py. New code imports
digits.experiments.sequential."""

from digits.experiments.sequential import *  # noqa: F403
