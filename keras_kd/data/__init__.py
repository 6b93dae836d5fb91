"""The data's side: transfer sets and their missing labels, token masks, the dict keys a batch
carries, the input pipeline, sequence-level sources and the checks every input passes."""
