"""The classroom, on top of the library: what only the lessons need.

Exercise checks (:mod:`~rqvae_lib.course.exercises`), the lessons' analyses and figures
(:mod:`~rqvae_lib.course.analysis`, :mod:`~rqvae_lib.course.plots`), the published numbers they
compare with (:mod:`~rqvae_lib.course.papers`), the retrieval lesson's tables
(:mod:`~rqvae_lib.course.retrieval`), the notebook runner (:mod:`~rqvae_lib.course.tutorial`),
the student edition (:mod:`~rqvae_lib.course.student`) and the grader
(:mod:`~rqvae_lib.course.grading`).
The library (everything in ``rqvae_lib`` outside this folder) never imports it.
"""
