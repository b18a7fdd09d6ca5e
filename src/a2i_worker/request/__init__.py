"""The request path, one role per module (see docs/lifecycle.md):

- :mod:`.inputs` reads a request's InputContent (inline or S3);
- :mod:`.decide` runs the route's rules (pure);
- :mod:`.budget_step` takes a loop from a route's review budget;
- :mod:`.rejecter` stores a rejection and its one DLQ copy;
- :mod:`.starter` starts a STARTING record's loop and records it (the one path used by
  intake, resubmission and the sweeper);
- :mod:`.canceller` ends a request on a cancel, whatever its phase;
- :mod:`.handler` turns one SQS message into a verdict using the roles above.
"""
