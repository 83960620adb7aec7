"""Learning from the agent sessions a user already has: harvest them into redacted digests
(`skilltrain sleep harvest`), for later steps to mine into tasks."""
