"""People in chat: cards and chat adapters."""
