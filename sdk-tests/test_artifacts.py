"""Artifacts from unchanged W&B scripts: `run.log_artifact`, `run.link_artifact` into the
organization's registry and `run.use_artifact` in a training script (its own Python process,
as in test_training.py), then the public API on what was logged — aliases, tags, `save()`,
`link`, `unlink`, `download` — with the automations each step must fire and what they carry.

Each test logs to a collection of its own, so the tests pass in any order and alone."""

from __future__ import annotations

import hashlib
from pathlib import Path

from wandb.automations import (ArtifactEvent, OnAddArtifactAlias, OnAddArtifactTag, OnCreateArtifact, OnLinkArtifact,
                               OnRemoveArtifactTag, OnUnlinkArtifact, SendWebhook)

from test_training import WAIT, _for, _hook, run_script

WEIGHTS = bytes(range(256)) * 40


def _script(collection: str, weights: Path, extra: str = "", log_aliases: str = '["candidate"]') -> str:
    return f"""
        import wandb
        run = wandb.init(entity="acme", project="vision", name="baseline", config={{"lr": 0.1}}, tags=["nightly"])
        for step in range(20):
            wandb.log({{"loss": 1.0 / (step + 1), "acc": step / 20}})
        art = wandb.Artifact("{collection}", type="model", metadata={{"acc": 0.93}})
        art.add_file({str(weights)!r}, name="weights.bin")
        run.log_artifact(art, aliases={log_aliases})
        {extra}
        run.finish()
        print(run.id)
    """


def _weights(tmp_path: Path, data: bytes = WEIGHTS) -> Path:
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    return path


def test_a_training_script_logs_links_and_uses_an_artifact_and_each_step_fires(api, herald, scopes, tmp_path):
    collection = "detector"
    # Artifact automations are on a collection: v0 is made over REST, the script logs v1.
    herald.rest("alice").post("/entities/acme/projects/vision/artifacts", {"collection": collection, "type": "model"},
                              expect=201)
    detector = api.artifact_collection("model", f"acme/vision/{collection}")
    payload = {"automation": "${automation_name}", "event": "${event_type}",
               "collection": "${artifact_collection_name}", "version": "${artifact_version_string}"}
    hook = _hook(api, "acme-fire")
    api.create_automation(OnCreateArtifact(scope=detector) >> SendWebhook.from_integration(hook, payload=payload),
                          name="artifact logged")
    api.create_automation(
        OnAddArtifactAlias(scope=detector, filter=ArtifactEvent.alias.eq("candidate"))
        >> SendWebhook.from_integration(hook, payload=payload),
        name="candidate tagged")
    api.create_automation(
        OnLinkArtifact(scope=scopes["registry"], filter=ArtifactEvent.alias.eq("production-detector"))
        >> SendWebhook.from_integration(_hook_of(api, "acme-org", "org-hook"),
                                        payload={"automation": "${automation_name}", "collection": "${artifact_collection_name}",
                                                 "version": "${artifact_version_string}"}),
        name="deploy detector")

    out = run_script(herald, _script(collection, _weights(tmp_path), extra="""
        run.link_artifact(art, "wandb-registry-model/classifiers", aliases=["production-detector"])
        used = run.use_artifact("detector:latest")
        assert used.version == "v1", used.version
    """))
    run_id = out.strip().splitlines()[-1]

    alice = herald.rest("alice")
    versions = alice.get(f"/entities/acme/projects/vision/artifacts/{collection}/versions")
    assert [v["version"] for v in versions] == ["v0", "v1"]
    v1 = versions[1]
    assert sorted(v1["aliases"]) == ["candidate", "latest"]
    assert v1["metadata"] == {"acc": 0.93}
    assert v1["run_id"] == run_id

    created = herald.receiver.wait_for("the artifact-logged webhook",
                                       _for("artifact logged", collection=collection), timeout=WAIT)
    assert created.json() == {"automation": "artifact logged", "event": "CREATE_ARTIFACT",
                              "collection": collection, "version": f"acme/vision/{collection}:v1"}
    tagged = herald.receiver.wait_for("the candidate webhook", _for("candidate tagged", collection=collection), timeout=WAIT)
    assert tagged.json()["event"] == "ADD_ARTIFACT_ALIAS"

    def deployed(r):
        try:
            body = r.json()
        except ValueError:
            return False
        return r.path == "/hook/org" and isinstance(body, dict) and body.get("automation") == "deploy detector"
    linked = herald.receiver.wait_for("the deploy webhook", deployed, timeout=WAIT)
    assert linked.json()["collection"] == "classifiers"

    # The public API sees the same version, its link and its files.
    art = api.artifact(f"acme/vision/{collection}:v1")
    assert art.version == "v1" and art.type == "model"
    assert art.metadata == {"acc": 0.93}
    assert sorted(art.aliases) == ["candidate", "latest"]
    assert art.size == len(WEIGHTS) and art.file_count == 1
    linked_art = api.artifact("acme-org/wandb-registry-model/classifiers:production-detector")
    assert linked_art.is_link and linked_art.source_name == f"{collection}:v1"

    downloaded = Path(art.download(root=str(tmp_path / "download")))
    assert (downloaded / "weights.bin").read_bytes() == WEIGHTS

    run = api.run(f"acme/vision/{run_id}")
    assert run.state == "finished"


def _hook_of(api, entity, name):
    return next(h for h in api.webhook_integrations(entity=entity) if h.name == name)


def test_the_same_content_is_one_version_and_changed_content_the_next(herald, tmp_path):
    collection = "dedupe-net"
    weights = _weights(tmp_path)
    run_script(herald, _script(collection, weights))
    run_script(herald, _script(collection, weights, log_aliases='["second"]'))
    alice = herald.rest("alice")
    versions = alice.get(f"/entities/acme/projects/vision/artifacts/{collection}/versions")
    assert [v["version"] for v in versions] == ["v0"], versions
    assert sorted(versions[0]["aliases"]) == ["candidate", "latest", "second"]

    weights.write_bytes(WEIGHTS[::-1])
    run_script(herald, _script(collection, weights))
    versions = alice.get(f"/entities/acme/projects/vision/artifacts/{collection}/versions")
    assert [v["version"] for v in versions] == ["v0", "v1"]
    assert sorted(versions[1]["aliases"]) == ["candidate", "latest"], "candidate moved to the new version"


def test_the_public_api_edits_links_unlinks_and_downloads_what_a_script_logged(api, herald, scopes, tmp_path,
                                                                                  monkeypatch):
    collection = "segmenter"
    run_script(herald, _script(collection, _weights(tmp_path)))
    hook = _hook(api, "acme-fire")
    segmenter = api.artifact_collection("model", f"acme/vision/{collection}")
    payload = {"automation": "${automation_name}", "version": "${artifact_version_string}"}
    api.create_automation(
        OnAddArtifactAlias(scope=segmenter, filter=ArtifactEvent.alias.eq("staging-seg"))
        >> SendWebhook.from_integration(hook, payload=payload),
        name="segmenter staged")
    api.create_automation(
        OnAddArtifactTag(scope=segmenter, filter=ArtifactEvent.tag.eq("europe"))
        >> SendWebhook.from_integration(hook, payload=payload),
        name="segmenter tagged")
    api.create_automation(
        OnRemoveArtifactTag(scope=segmenter) >> SendWebhook.from_integration(hook, payload=payload),
        name="segmenter untagged")
    api.create_automation(
        OnUnlinkArtifact(scope=scopes["registry"])
        >> SendWebhook.from_integration(_hook_of(api, "acme-org", "org-hook"),
                                        payload={"automation": "${automation_name}",
                                                 "collection": "${artifact_collection_name}"}),
        name="segmenter unlinked")

    art = api.artifact(f"acme/vision/{collection}:v0")
    art.aliases.append("staging-seg")
    art.tags.append("europe")
    art.description = "a segmenter"
    art.save()
    for name in ("segmenter staged", "segmenter tagged"):
        got = herald.receiver.wait_for(f"the {name} webhook", _for(name), timeout=WAIT)
        assert got.json()["version"] == f"acme/vision/{collection}:v0"

    alice = herald.rest("alice")
    v0 = alice.get(f"/entities/acme/projects/vision/artifacts/{collection}/versions/v0")
    assert "staging-seg" in v0["aliases"] and v0["tags"] == ["europe"]
    assert v0["description"] == "a segmenter"
    reread = api.artifact(f"acme/vision/{collection}:staging-seg")
    assert reread.tags == ["europe"] and reread.description == "a segmenter"

    reread.aliases.remove("staging-seg")
    reread.tags.remove("europe")
    reread.save()
    v0 = alice.get(f"/entities/acme/projects/vision/artifacts/{collection}/versions/v0")
    assert "staging-seg" not in v0["aliases"] and v0["tags"] == []
    got = herald.receiver.wait_for("the untagged webhook", _for("segmenter untagged"), timeout=WAIT)
    assert got.json()["version"] == f"acme/vision/{collection}:v0"

    # `link` logs in as a user who ran `wandb login` would be: from the environment.
    monkeypatch.setenv("WANDB_API_KEY", herald.keys["alice"])
    monkeypatch.setenv("WANDB_BASE_URL", herald.sdk_url)
    linked = art.link("wandb-registry-model/segmenters", aliases=["prod-eu"])
    org = herald.rest("alice").get("/entities/acme-org/projects/wandb-registry-model/artifacts/segmenters/versions")
    assert [v["version"] for v in org] == ["v0"] and "prod-eu" in org[0]["aliases"]
    linked.unlink()
    org = herald.rest("alice").get("/entities/acme-org/projects/wandb-registry-model/artifacts/segmenters/versions")
    assert org == []

    def unlinked(r):
        try:
            body = r.json()
        except ValueError:
            return False
        return r.path == "/hook/org" and isinstance(body, dict) and body.get("automation") == "segmenter unlinked"
    got = herald.receiver.wait_for("the unlink webhook", unlinked, timeout=WAIT)
    assert got.json()["collection"] == "segmenters"

    downloaded = Path(api.artifact(f"acme/vision/{collection}:latest").download(root=str(tmp_path / "dl")))
    data = (downloaded / "weights.bin").read_bytes()
    assert hashlib.md5(data).hexdigest() == hashlib.md5(WEIGHTS).hexdigest()


def test_a_version_made_over_rest_downloads_as_an_artifact_without_files(api, tmp_path):
    """The seeded acme/vision/resnet:v0 was made over REST and holds no files: the SDK downloads
    it as an empty artifact rather than failing."""
    art = api.artifact("acme/vision/resnet:v0")
    assert art.file_count == 0 and art.size == 0
    downloaded = Path(art.download(root=str(tmp_path / "empty")))
    # The SDK makes the directory only to put a file in it.
    assert not downloaded.exists() or list(downloaded.iterdir()) == []
