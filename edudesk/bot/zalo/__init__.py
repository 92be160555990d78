"""Zalo: the Bot Platform (no buttons: commands and one-time links) and the Official Account API (hidden
query buttons carrying one-time action tokens), both behind the `ChatPort`."""
