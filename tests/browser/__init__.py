"""Browser tests: what a learner sees in JupyterLab (bertviz views, the sampler widget), driven in Chromium.

A package (this file) so that its conftest.py is imported as ``browser.conftest`` and does not replace
tests/conftest.py, which other test files import as ``conftest``.
"""
