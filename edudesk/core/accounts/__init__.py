"""Accounts: naming rules, the account log and sheet, password links; provisioning lives in core/provisioning."""
