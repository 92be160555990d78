"""The built-in web console (aiohttp + jinja2): no token needed."""
