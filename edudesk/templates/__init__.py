"""The templates, static files and forms, shipped in the wheel as the package `edudesk.templates`."""
