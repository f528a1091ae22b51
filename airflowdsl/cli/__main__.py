"""``python -m airflowdsl.cli``: the same as the ``airflowdsl`` command."""

from airflowdsl.cli import main

main()
