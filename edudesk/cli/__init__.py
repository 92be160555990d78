"""The command line beside the composition root (main.py)."""
