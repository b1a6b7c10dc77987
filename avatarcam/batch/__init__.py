"""`avatarcam batch`: many clips from one jobs file, on a pool of local processes or on Ray.

- ``jobs``: the jobs file (CSV or JSON Lines) read into checked `Job`s, or one error line.
- ``worker``: one job rendered in a worker process (`offline.render_clip`, as `avatarcam render`
  does), keeping each profile's renderer for that worker's next jobs; resume and failures.
- ``runner``: the local backends (this process, a process pool), the progress bar, the summary.
- ``cluster``: the Ray backend (the optional extra ``avatarcam[batch]``).
"""
