"""Packaging beyond what pyproject.toml can say: the notebooks ship inside the wheel as
``dicrepro/notebooks/`` (``dicrepro run`` finds them there when there is no checkout), while in the
repository they stay in ``notebooks/``, where JupyterLab users open them. Everything else is in
pyproject.toml."""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["dicrepro", "dicrepro.*"]) + ["dicrepro.notebooks"],
    package_dir={"dicrepro.notebooks": "notebooks"},
)
