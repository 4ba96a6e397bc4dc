"""A run: the composition root (`runner`), the pipeline and its workers, pacing, admission, watch mode,
the shared queue worker, and progress with its views."""
