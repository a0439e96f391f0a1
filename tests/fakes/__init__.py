"""Local stand-ins for the vendors (PagerDuty, Opsgenie, Slack, a webhook, Sentry).

Each is a real HTTP server on 127.0.0.1 in a thread, and rejects what its
vendor would reject (VENDOR-FACTS.md), with the vendor's status and body.
"""
