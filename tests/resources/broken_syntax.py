"""Not valid Python (the CLI must report it in one line)."""

def oops(:
    pass
