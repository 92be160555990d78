"""The packages of the wheel; everything else is in pyproject.toml.

setuptools cannot both find packages and ship a folder under another package's name from pyproject.toml, so
the list is made here: the code's top-level packages as found, and the repository's `templates/` folder as
`edudesk.templates` (`[tool.setuptools.package-dir]`), read through `edudesk/resources.py`. When the code
moves under `edudesk/` this file goes.
"""

from setuptools import find_namespace_packages, setup

CODE = ("edudesk", "core", "mailer", "bot", "cli", "directories")
SKIP = ["*.__pycache__", "__pycache__"]
packages = find_namespace_packages(include=[n for top in CODE for n in (top, f"{top}.*")], exclude=SKIP)
data = ["edudesk." + name for name in find_namespace_packages(include=["templates", "templates.*"], exclude=SKIP)]

setup(packages=packages + data)
