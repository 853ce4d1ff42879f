"""nbgrader's settings for this course (gptj_teach.classroom.student.nbgrader_settings): the student edition's stub,
cleared outputs and no widget state; for grading a cell timeout that fits the slowest cell, GPTJ_TEACH_GRADING=1
in the kernel (gt.classroom.grading_mode()), and the cells tagged skip-when-grading skipped.

In a course directory (this file next to source/<assignment>/ holding the notebooks):
    nbgrader generate_assignment <assignment>     # release/<assignment>/: the student edition
    nbgrader autograde <assignment>               # grades submitted/<student>/<assignment>/
"""

from gptj_teach.classroom.student import nbgrader_settings

c = get_config()  # noqa: F821 (nbgrader provides it)
nbgrader_settings(c)
