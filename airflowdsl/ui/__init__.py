"""The `airflowdsl ui` web page: runs, a run's DAG by step status, training curves, trials.

A local, read-only view of one store (``airflowdsl ui [--store URI]``), built on
Starlette + Jinja2 + uvicorn (the ``ui`` extra) with Chart.js shipped in ``static/``
(no network needed). ``data`` reads the store, ``layout`` places the DAG, ``app``
serves the pages, ``server`` binds and runs it. Nothing in airflowdsl imports this
package except the command line.
"""
