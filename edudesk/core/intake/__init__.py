"""Intake filters: small named checks run in order on every IncomingMail."""
