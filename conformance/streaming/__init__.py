"""The streaming check family: stream ⇄ non-stream parity of every parsed surface (at the server's
``--stream-interval``) and stop strings while streaming; cases/ (data) and faults.toml (the fault table)."""
