"""Requests: the state machine, the decisions (use cases), queries, deadlines and reports."""
