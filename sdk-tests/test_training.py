"""Unchanged W&B training scripts log into herald: each script below runs in its own Python
process with only WANDB_BASE_URL and WANDB_API_KEY pointing it at herald, and the run, its
history and its end state are then read back over REST and through the public API, while the
automations made through the SDK fire on what the script logged."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from wandb.automations import OnRunMetric, OnRunState, RunEvent, SendNotification, SendWebhook

from herald_sdk import history, script_env, wait_until

WAIT = 20


def run_script(herald, body: str, user: str = "alice", expect_exit: int = 0, console: str = "off") -> str:
    """Runs `body` as a training script as `user` (with the SDK's console capture `console`);
    returns its stdout."""
    # Straight to herald: the recording proxy reads Content-Length bodies only, and wandb-core
    # streams some bodies chunked.
    env = script_env(herald.url, herald.keys[user], WANDB_CONSOLE=console)
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(body)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == expect_exit, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _hook(api, name):
    return next(h for h in api.webhook_integrations(entity="acme") if h.name == name)


def _for(automation, **fields):
    """A receiver match (called under the receiver's lock): a POST to /hook/fire whose JSON names
    `automation` and holds `fields`."""
    def match(r):
        try:
            body = r.json()
        except ValueError:
            return False
        return (r.path == "/hook/fire" and isinstance(body, dict) and body.get("automation") == automation
                and all(body.get(k) == v for k, v in fields.items()))
    return match


def _posts_for(herald, automation):
    return [r for r in herald.receiver.posts_to("/hook/fire") if _for(automation)(r)]


def test_a_finished_run_logs_config_history_and_summary_and_fires_while_training(api, herald, scopes):
    api.create_automation(
        OnRunMetric(scope=scopes["project"], filter=RunEvent.metric("train_loss").avg(5) < 0.1)
        >> SendWebhook.from_integration(_hook(api, "acme-fire"),
                                        payload={"automation": "${automation_name}", "run": "${run_id}",
                                                 "metric": "${metric_name}"}),
        name="training converged",
    )
    out = run_script(herald, """
        import wandb
        run = wandb.init(entity="acme", project="vision", name="baseline", config={"lr": 0.1}, tags=["nightly"])
        for step in range(100):
            wandb.log({"train_loss": 1.0 / (step + 1), "acc": step / 100, "train": {"epoch": step // 10}})
        run.summary["best_acc"] = 0.99
        run.finish()
        print(run.id)
    """)
    run_id = out.strip().splitlines()[-1]
    alice = herald.rest("alice")
    run = alice.get(f"/entities/acme/projects/vision/runs/{run_id}")
    assert run["state"] == "FINISHED"
    assert run["display_name"] == "baseline"
    assert run["config"] == {"lr": 0.1}
    assert run["tags"] == ["nightly"]
    assert run["summary"]["best_acc"] == 0.99
    rows = alice.get(f"/entities/acme/projects/vision/runs/{run_id}/history?limit=1000")["rows"]
    assert [r["step"] for r in rows] == list(range(100))
    assert set(rows[0]["values"]) == {"train_loss", "acc", "train.epoch"}

    got = herald.receiver.wait_for("the converged webhook", _for("training converged"), timeout=WAIT)
    assert got.json() == {"automation": "training converged", "run": run_id, "metric": "train_loss"}
    # Once per run, whatever the steps that follow.
    assert len(_posts_for(herald, "training converged")) == 1

    # The public API reads back what the script logged.
    public = api.run(f"acme/vision/{run_id}")
    assert public.state == "finished"
    assert public.config == {"lr": 0.1}
    assert public.summary["best_acc"] == 0.99
    history = public.history(pandas=False)
    assert len(history) == 100
    assert history[-1]["train_loss"] == 0.01 and history[-1]["_step"] == 99
    # With keys: only rows holding them, only those keys, thinned to `samples`.
    sampled = public.history(keys=["acc"], samples=10, pandas=False)
    assert len(sampled) == 10
    assert set(sampled[0]) == {"_step", "acc"} and (sampled[0]["_step"], sampled[-1]["_step"]) == (0, 99)


def test_a_failing_run_ends_failed_and_fires_its_state_automation(api, herald, scopes):
    api.create_automation(
        OnRunState(scope=scopes["project"], filter=RunEvent.state.eq("failed"))
        >> SendWebhook.from_integration(_hook(api, "acme-fire"),
                                        payload={"automation": "${automation_name}", "run": "${run_id}"}),
        name="training failed",
    )
    slack = next(iter(api.slack_integrations(entity="acme")))
    api.create_automation(
        OnRunState(scope=scopes["project"], filter=RunEvent.state.eq("failed"))
        >> SendNotification.from_integration(slack, title="Training ${run_name} failed", text="now ${run_status}",
                                             level="ERROR"),
        name="training failed on slack",
    )
    run_script(herald, """
        import wandb
        wandb.init(entity="acme", project="vision", id="crashes")
        wandb.log({"loss": 5.0})
        raise RuntimeError("out of memory")
    """, expect_exit=1)
    run_script(herald, """
        import wandb
        run = wandb.init(entity="acme", project="vision", id="exits-one")
        wandb.log({"loss": 5.0})
        run.finish(exit_code=1)
    """)
    alice = herald.rest("alice")
    for run_id in ("crashes", "exits-one"):
        # After an uncaught exception the SDK's service process may send the last post after the
        # script itself has exited.
        wait_until(f"{run_id} to end FAILED",
                   lambda: alice.get(f"/entities/acme/projects/vision/runs/{run_id}")["state"] == "FAILED" or None,
                   timeout=WAIT)
        herald.receiver.wait_for(f"the failure webhook of {run_id}", _for("training failed", run=run_id),
                                 timeout=WAIT)

        def slack_message(r, run_id=run_id):
            try:
                body = r.json()
            except ValueError:
                return False
            return (r.path == "/api/chat.postMessage" and isinstance(body, dict)
                    and f"Training {run_id} failed" in body.get("text", ""))
        got = herald.receiver.wait_for(f"the Slack message of {run_id}", slack_message, timeout=WAIT)
        assert got.json()["channel"] == "C0SDKTEST" and "now FAILED" in got.json()["text"]


def test_a_run_without_entity_logs_into_the_callers_own(herald):
    out = run_script(herald, """
        import wandb
        run = wandb.init(project="scratch")
        wandb.log({"loss": 1.0})
        run.finish()
        print(run.entity, run.id)
    """)
    entity, run_id = out.strip().splitlines()[-1].split()
    assert entity == "alice"
    run = herald.rest("alice").get(f"/entities/alice/projects/scratch/runs/{run_id}")
    assert run["state"] == "FINISHED"


def test_a_resumed_run_continues_its_history_without_doubling_it(herald):
    first = """
        import wandb
        run = wandb.init(entity="acme", project="vision", id="resumable")
        for i in range(5):
            wandb.log({"loss": float(i)})
        run.finish()
    """
    run_script(herald, first)
    run_script(herald, """
        import wandb
        run = wandb.init(entity="acme", project="vision", id="resumable", resume="must")
        for i in range(5):
            wandb.log({"loss": 10.0 + i})
        run.finish()
    """)
    rows = herald.rest("alice").get("/entities/acme/projects/vision/runs/resumable/history?limit=1000")["rows"]
    assert [(r["step"], r["values"]["loss"]) for r in rows] == [
        (0, 0.0), (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 10.0), (6, 11.0), (7, 12.0), (8, 13.0), (9, 14.0)]
    # A run that does not exist cannot be resumed.
    err = run_script(herald, """
        import wandb
        try:
            wandb.init(entity="acme", project="vision", id="never-was", resume="must")
        except Exception as e:
            print("REFUSED", type(e).__name__)
    """)
    assert "REFUSED" in err


def test_a_fast_loop_loses_no_row(herald):
    """A script logging as fast as it can sends its rows in posts far over 1 MiB; every row
    arrives, once."""
    out = run_script(herald, """
        import wandb
        run = wandb.init(entity="acme", project="vision")
        for step in range(12000):
            wandb.log({f"m{i}": step + i / 10 for i in range(10)})
        run.finish()
        print(run.id)
    """)
    run_id = out.strip().splitlines()[-1]
    alice = herald.rest("alice")
    assert alice.get(f"/entities/acme/projects/vision/runs/{run_id}")["state"] == "FINISHED"
    rows = history(alice, f"/entities/acme/projects/vision/runs/{run_id}")
    assert [r["step"] for r in rows] == list(range(12000))
    assert all(len(r["values"]) == 10 for r in rows)


def test_what_a_script_prints_is_read_back(api, herald):
    """The SDK streams what the script prints (standard output and error) as console lines;
    herald keeps them (its default) and answers them by line number, over REST and to the public
    API's `console_logs()`."""
    out = run_script(herald, """
        import sys
        import wandb
        run = wandb.init(entity="acme", project="vision")
        for epoch in range(3):
            print(f"epoch {epoch}: loss {1 / (epoch + 1):.3f}")
        print("lr looks high", file=sys.stderr)
        print("a NUL:\\0.")  # kept as U+FFFD, not refused with the post
        run.finish()
        print(run.id)
    """, console="wrap")
    run_id = out.strip().splitlines()[-1]
    page = herald.rest("alice").get(f"/entities/acme/projects/vision/runs/{run_id}/console?limit=1000")
    lines = [(line["stream"], line["text"]) for line in page["lines"]]
    printed = [("stdout", "epoch 0: loss 1.000"), ("stdout", "epoch 1: loss 0.500"),
               ("stdout", "epoch 2: loss 0.333"), ("stderr", "lr looks high"), ("stdout", "a NUL:\ufffd.")]
    # In the order printed (the SDK may add lines of its own around them).
    assert [line for line in lines if line in printed] == printed, lines
    assert [line["line"] for line in page["lines"]] == list(range(len(lines)))
    assert all(line["time"] for line in page["lines"] if (line["stream"], line["text"]) in printed)
    assert page["line_count"] == len(lines)

    run = api.run(f"acme/vision/{run_id}")
    logs = list(run.console_logs(per_page=2))  # pages of two: the cursor is followed
    assert [(line.level, line.content) for line in logs] == [
        ("error" if stream == "stderr" else "", text) for stream, text in lines]
    assert [line.number for line in logs] == list(range(len(lines)))
    assert logs[0].timestamp is not None and logs[0].timestamp.tzinfo is not None
    tail = list(run.console_logs(last=2))
    assert [line.content for line in tail] == [text for _, text in lines[-2:]]


def test_a_run_stopped_through_the_api_stops_its_script(api, herald):
    """`Api().run(…).stop()`, as W&B's Stop button: herald answers the script's next file_stream
    post with `stopped`, the SDK (asking every 15 s) interrupts the script, and its last post
    ends the run KILLED."""
    # Posts every second rather than every 15: the stop reaches the SDK sooner.
    env = script_env(herald.url, herald.keys["alice"], WANDB_CONSOLE="off", WANDB__FILE_STREAM_TRANSMIT_INTERVAL="1")
    script = textwrap.dedent("""
        import time
        import wandb
        run = wandb.init(entity="acme", project="vision", id="stoppable")
        for step in range(1200):  # four minutes, unless stopped
            wandb.log({"loss": 1.0 / (step + 1)})
            time.sleep(0.2)
        run.finish()
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        alice = herald.rest("alice")
        path = "/entities/acme/projects/vision/runs/stoppable"

        def logged():  # the run is made by the script: a 404 until then
            return alice.get(f"{path}/history?limit=1", expect=(200, 404)).get("rows")

        wait_until("the script to log", logged, timeout=WAIT)
        api.run("acme/vision/stoppable").stop()
        assert alice.get(path)["stop_requested"] is True
        stopped_at = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # Interrupted as by Ctrl-C, within one poll of the SDK and a post.
    assert proc.returncode != 0, f"exit {proc.returncode}:\n{out}\n{err}"
    assert "KeyboardInterrupt" in err, err
    assert time.monotonic() - stopped_at < 40
    wait_until("the run to end KILLED", lambda: alice.get(path)["state"] == "KILLED" or None, timeout=WAIT)
    steps = [r["step"] for r in alice.get(f"{path}/history?limit=1000")["rows"]]
    assert 0 < len(steps) < 1200
