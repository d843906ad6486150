"""Rendering verdicts: the JSON report (a contract), the terminal view, atomic file output."""
