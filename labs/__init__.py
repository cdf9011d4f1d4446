"""raftlabs command line and tools: `labs --help`."""
