"""herald SIGKILLed while a training script logs loses nothing: the SDK resends what herald did
not answer once herald is back on its port, and herald keeps each history row exactly once (the
file_stream posts number their lines), whatever it had committed when it died."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

from herald_sdk import ADMIN_KEY, history, script_env, wait_until

ROWS = 2000
RUN = "/entities/acme/projects/vision/runs/killed"

# Paced at about 5 ms a row (the SDK takes 2 of them): still logging when herald dies a second
# or two in, done in about 10 s.
SCRIPT = f"""
import time
import wandb

run = wandb.init(entity="acme", project="vision", id="killed")
for i in range({ROWS}):
    wandb.log({{"loss": 1.0 / (i + 1), "i": i}})
    time.sleep(0.003)
run.finish()
"""

# The suite lets the SDK retry a GraphQL request once; this script's retries outlast herald's
# downtime. Its posts go every second, not every 15 s, so herald has rows of the run when it
# dies. (wandb-core takes these as whole seconds: 0.2 is 0, which means the default.)
PATIENT = dict(
    WANDB_CONSOLE="off",
    WANDB__FILE_STREAM_TRANSMIT_INTERVAL="1",
    WANDB__FILE_STREAM_RETRY_WAIT_MIN_SECONDS="1",
    WANDB__FILE_STREAM_RETRY_WAIT_MAX_SECONDS="2",
    WANDB__GRAPHQL_RETRY_MAX="10",
    WANDB__GRAPHQL_RETRY_WAIT_MIN_SECONDS="1",
    WANDB__GRAPHQL_RETRY_WAIT_MAX_SECONDS="2",
)


def _seed(server) -> str:
    """alice, ADMIN of team acme with project vision; returns her API key."""
    admin = server.rest(ADMIN_KEY)
    key = admin.post("/users", {"username": "alice", "email": "alice@example.com"}, expect=201)["api_key"]
    admin.post("/entities", {"name": "acme", "kind": "team"}, expect=201)
    admin.put("/entities/acme/members/alice", {"role": "ADMIN"}, expect=200)
    admin.post("/entities/acme/projects", {"name": "vision"}, expect=201)
    return key


def test_herald_killed_mid_run_loses_no_history_row(own_herald, tmp_path):
    key = _seed(own_herald)
    alice = own_herald.rest(key)
    output = tmp_path / "script.log"
    with open(output, "w") as out:
        # Straight to herald, as test_training's scripts (the recording proxy reads no chunked body).
        script = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=out, stderr=subprocess.STDOUT,
                                  env=script_env(own_herald.url, key, **PATIENT))
    try:
        def rows_in() -> int:
            """How many rows herald has: the summary comes with them, `i` of the last one."""
            return (alice.get(RUN, expect=(200, 404)).get("summary") or {}).get("i", -1) + 1

        at_kill = wait_until("herald to have rows of the run", rows_in, timeout=30)
        assert script.poll() is None, f"the script ended before herald was killed:\n{output.read_text()}"
        own_herald.kill()
        # Down long enough that the SDK's posts are refused and retried.
        time.sleep(1.5)
        own_herald.start()
        assert script.wait(timeout=60) == 0, f"the script failed:\n{output.read_text()}"
    finally:
        if script.poll() is None:
            script.kill()
            script.wait()

    assert at_kill < ROWS, "herald was killed after it had every row"
    assert alice.get(RUN)["state"] == "FINISHED"
    rows = history(alice, RUN)
    steps = [r["step"] for r in rows]
    missing = sorted(set(range(ROWS)) - set(steps))
    doubled = sorted(s for s, n in Counter(steps).items() if n > 1)
    assert steps == list(range(ROWS)), f"{len(steps)} rows; missing {missing[:20]}, doubled {doubled[:20]}"
    assert [r["values"] for r in rows] == [{"loss": 1.0 / (i + 1), "i": i} for i in range(ROWS)]
    # Neither life of herald answered with a server error (tower-http logs each as an ERROR).
    errors = [line for line in own_herald.log_path.read_text().splitlines() if " ERROR " in line]
    assert not errors, "\n".join(errors[:20])
