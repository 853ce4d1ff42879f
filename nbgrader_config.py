"""nbgrader's settings for this course: the student edition's stub and cleared outputs (gptj_teach.student).

In a course directory (this file next to source/<assignment>/ holding the notebooks):
    nbgrader generate_assignment <assignment>     # release/<assignment>/: the student edition
    nbgrader autograde <assignment>               # grades submitted/<student>/<assignment>/
"""

from gptj_teach.student import nbgrader_settings

c = get_config()  # noqa: F821 (nbgrader provides it)
nbgrader_settings(c)
