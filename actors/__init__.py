"""The daemon's long-running actors, one module each; wired together in deneva.runtime."""
