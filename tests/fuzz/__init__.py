"""Property-based fuzzing of every HTTP route, WebSocket frame and SSE resume id of the three services (issue 8).

``make test`` runs 200 generated cases per route and property (derandomized: the same cases every run).
Dig deeper with ``FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/fuzz``; ``FUZZ_SHRINK=1`` shrinks a failing case
to a minimal one (slow: it replays the case hundreds of times).

- ``test_openapi_documents.py``: each service's ``openapi.json`` lists exactly the routes its app registers.
- ``test_http_routes.py``: schemathesis on every route of every document, with every kind of credential.
- ``test_http_parser.py``: raw header bytes through aiohttp's parser.
- ``test_ws_frames.py``: generated frames on ``/ws/agent`` and ``/ws/dashboard``, before and after auth.
- ``test_sse_resume.py``: ``Last-Event-ID`` / ``last_event_id`` on ``/events`` and ``/ws/dashboard``.
- ``test_regressions.py``: the bad inputs issue 8 lists (and later fuzz finds), replayed exactly.
"""
