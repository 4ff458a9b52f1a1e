"""Telling humans: a generic webhook now; Slack, PagerDuty and post-mortems later."""
