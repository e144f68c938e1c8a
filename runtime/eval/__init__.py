"""edgembed.eval: retrieval quality on BEIR data (`edgembed eval`). `evaluate` runs every
output precision and the search cascade; `beir` reads the data and computes nDCG and
recall; `residual` holds the multi-bit residual codes that only evaluation measures.

Nothing is imported here, so `edgembed.eval.beir` can be used without loading the index."""
