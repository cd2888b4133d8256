"""HTTP handlers only: they verify, parse, record and answer; the engine does the rest."""
