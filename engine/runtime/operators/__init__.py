"""Operators by family: sources, stateless, windowing, joins. Each turns input batches into an `Output`."""
