"""What shapes a fit: recipes (named settings), schedules, callbacks, resuming, the on-policy
step and the chunked loss of large vocabularies."""
