"""edudesk core: the domain, no network code."""
