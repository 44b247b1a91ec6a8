"""Hash banks: signal types, banks, the incremental PDQ index, exchange formats and fetchers."""
