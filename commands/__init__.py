"""Command-line commands beyond the core ones in ``cli.py``, and what they share."""
