"""The classroom: exercises (the checks of the notebooks' your-turn cells, one module a notebook) and student (the
student edition of the notebooks, for nbgrader or by hand)."""
