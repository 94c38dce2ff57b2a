"""``samedge bench``: per-stage latency, memory and compute floors, side by side with the
official PyTorch predictor.

Modules: :mod:`.prompts` (seeded prompt generator), :mod:`.stats` (summaries),
:mod:`.sysinfo` (machine and library versions), :mod:`.flops` (FLOP counts and GEMM peak),
:mod:`.worker` (the child process that times one side), :mod:`.runner` (drives both sides,
alternating repeats), :mod:`.results` (the typed result and its JSON), :mod:`.targets`
(figures against limits from a targets file), :mod:`.report` (Markdown, console, plot).
Importing this package imports nothing heavy.
"""
