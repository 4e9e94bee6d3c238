"""The README's "Using the wandb SDK" example, run as written: its Python block is taken from
README.md and run in a fresh interpreter against the suite's server, after the state the README's
CLI example leaves (team ml-team, ml-team/mnist/classifier:v0, the webhook integration `ci`).
Then the alias the README names is added over REST and the payload it shows must arrive."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO
from herald_sdk import script_env

SECTION = "## Using the wandb SDK"
TRAINING = "## Log from your training script"


def readme_example(section: str = SECTION) -> str:
    text = (REPO / "README.md").read_text()
    start = text.index(section)
    block = text.index("```python\n", start) + len("```python\n")
    return text[block : text.index("```", block)]


def test_the_readme_example_runs_and_its_automation_fires(herald):
    admin = herald.rest()
    admin.post("/entities", {"name": "ml-team", "kind": "team"}, expect=201)
    admin.post("/entities/ml-team/projects", {"name": "mnist"}, expect=201)
    admin.post("/entities/ml-team/projects/mnist/artifacts",
               {"collection": "classifier", "type": "model", "metadata": {"accuracy": 0.93}}, expect=201)
    admin.post("/entities/ml-team/integrations",
               {"kind": "webhook", "name": "ci", "url": f"{herald.receiver.url}/hook/readme"}, expect=201)

    env = dict(os.environ, HERALD_URL=herald.sdk_url, HERALD_API_KEY=herald.keys["admin"])
    run = subprocess.run([sys.executable, "-c", readme_example()], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"the README example failed:\n{run.stdout}\n{run.stderr}"
    assert "classifier staging" in run.stdout, run.stdout

    # The automation it made is enabled again (the example disables and re-enables it) and fires
    # on the alias the README adds, with the body the README shows.
    listed = admin.get("/entities/ml-team/automations?name=classifier%20staging")
    assert [a["enabled"] for a in listed] == [True], listed
    admin.post("/entities/ml-team/projects/mnist/artifacts/classifier/versions/v0/aliases",
               {"alias": "staging"}, expect=200)
    got = herald.receiver.wait_for("the README's delivery", lambda r: r.path == "/hook/readme")
    assert json.loads(got.body) == {"event": "ADD_ARTIFACT_ALIAS", "version": "ml-team/mnist/classifier:v0"}


def test_the_readme_training_script_logs_its_run(herald, tmp_path):
    """The training script of "Log from your training script", run as written with only
    WANDB_BASE_URL and WANDB_API_KEY set, leaves the run the README describes."""
    admin = herald.rest()
    admin.post("/entities", {"name": "ml-team", "kind": "team"}, expect=(201, 409))
    admin.post("/entities/ml-team/projects", {"name": "mnist"}, expect=(201, 409))
    env = script_env(herald.url, herald.keys["admin"])
    run = subprocess.run([sys.executable, "-c", readme_example(TRAINING)], env=env, capture_output=True,
                         text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, f"the README script failed:\n{run.stdout}\n{run.stderr}"
    run_id = run.stdout.strip().splitlines()[-1]
    got = admin.get(f"/entities/ml-team/projects/mnist/runs/{run_id}")
    assert (got["display_name"], got["state"], got["config"]) == ("baseline", "FINISHED", {"lr": 0.1})
    assert got["summary"]["best_acc"] == 0.99
    rows = admin.get(f"/entities/ml-team/projects/mnist/runs/{run_id}/history?limit=1000")["rows"]
    assert len(rows) == 100 and set(rows[0]["values"]) == {"loss", "acc"}
    # Its model is the collection's newest version, made by the run, with the files uploaded.
    versions = admin.get("/entities/ml-team/projects/mnist/artifacts/classifier/versions")
    newest = versions[-1]
    assert sorted(newest["aliases"]) == ["candidate", "latest"] and newest["run_id"] == run_id
    assert newest["metadata"] == {"accuracy": 0.99}
