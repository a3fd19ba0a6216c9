"""Data preparation: read any supported layout, convert to ChatML, clean, check PII, split.

Submodules: :mod:`.readers` (formats and detection), :mod:`.convert` (canonical
records), :mod:`.clean` (normalisation, dedupe), :mod:`.pii`, :mod:`.split` and
:mod:`.prepare` (the whole pipeline). Nothing heavy is imported here.
"""
