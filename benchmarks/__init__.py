"""The benchmarks behind ``nox -s bench``: triostream side by side with the official SDK.

Modules, one job each: :mod:`.streams` (the synthetic streams), :mod:`.server`
(the loopback server process), :mod:`.consumers` (each way of consuming a
stream), :mod:`.measure` (CPU, wall, memory, statistics), :mod:`.matrix`,
:mod:`.scaling` and :mod:`.concurrency` (the three sections), :mod:`.targets`
(the verdicts), :mod:`.machine`, :mod:`.plots` and :mod:`.report`.
Run ``python -m benchmarks --help``.
"""
