"""Paging people: what a page says, when one goes out, and the outbox that delivers it.

```
incident moves ──> routing.decide_pages (pure: policy `notify:` + the move)
                     └─> page.compose_page (pure: journal records → Page)
                           └─> vendors.*_body (pure: Page → payload, no secret)
                                 └─> journal outbox row ('pending')   ← written BEFORE sending
outbox worker ──> due rows ──> channels.*.request (secrets added here) ──> HTTP
                                 └─> retry.classify: sent | retry (backoff, Retry-After) | rejected
```

Secrets (routing keys, API keys, webhook URLs, tokens) live only in the
settings and in the request being sent: never in a row, a log line or an error.
"""
