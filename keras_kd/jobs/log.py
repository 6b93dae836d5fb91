"""The jobs' one way of telling the user what happens: a line on stdout, flushed, unless quiet."""


def say(message, verbose):
    """Print `message` (flushed at once: a job's lines interleave with Keras's progress bars) if `verbose`."""
    if verbose:
        print(message, flush=True)
