"""Kept so that `python setup.py ...` and old tooling work; metadata lives in pyproject.toml."""
from setuptools import setup

setup()
