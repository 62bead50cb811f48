"""Submission rate limits: who is asking (principal, client address) and how often."""
