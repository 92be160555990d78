"""Real servers the integration tests start privately (throwaway config, free port, temp storage)."""
