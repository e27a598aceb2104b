"""A stand-in for one decision-service process, for the SIGTERM test: it records `count`
payments and their answers, says so on stdout, and waits. It never closes its audit
trail itself: SIGTERM ends it the way uvicorn ends a worker (a clean interpreter exit), and
the trail's `atexit` close must flush what is still queued.

    python -m tests.support.audit_process COUNT   (settings from the environment)
"""

from __future__ import annotations

import signal
import sys
import time
from datetime import UTC, datetime

from lakehouse.settings import Settings
from streaming.fraud.audit import AuditTrail
from tests.support.fraud_audit import answer, payment


def main(count: int) -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    trail = AuditTrail(Settings())
    now = datetime.now(UTC)
    for number in range(count):
        transaction = payment(number, now)
        trail.record(transaction, answer(transaction))
    print(f"recorded {count}, {trail.pending} pending", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(int(sys.argv[1]))
