"""The geodata layer's commands as functions: scenes in, indices, composites, chips, embeddings and chip maps out."""
