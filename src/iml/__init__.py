"""Everything beyond the three exercise scripts: data commands, fast paths, checks, plots and studies.

Run as ``python -m iml COMMAND`` (or ``iml COMMAND`` after ``pip install -e .``); ``python -m iml --help``
lists the commands. The package builds on the exercise's ``util`` and ``models`` and never imports
an exercise script.
"""
