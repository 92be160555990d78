"""Mail in and out: SMTP listener, IMAP watcher, parser, outbox."""
