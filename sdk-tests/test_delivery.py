"""Automations made through the SDK fire: the change is made over herald's REST API, the
receiver gets the rendered payload, and herald's execution history shows it under the
automation's id."""

from __future__ import annotations

from wandb.automations import (
    ArtifactEvent,
    DoNothing,
    OnAddArtifactAlias,
    OnLinkArtifact,
    OnRunMetric,
    OnRunState,
    RunEvent,
    SendNotification,
    SendWebhook,
)

from herald_sdk import automation_number, wait_until

WAIT = 20  # seconds, for any one delivery


def _hook(api, entity, name):
    return next(h for h in api.webhook_integrations(entity=entity) if h.name == name)


def _json(received):
    try:
        return received.json()
    except ValueError:
        return None


def _for_automation(path, name):
    """A receiver match: a POST to `path` whose JSON names the automation."""
    return lambda r: r.path == path and isinstance(_json(r), dict) and _json(r).get("automation") == name


def _finished_executions(rest, automation):
    n = automation_number(automation)

    def probe():
        executions = rest.get(f"/automations/{n}/executions")["executions"]
        return executions if executions and all(x["status"] == "FINISHED" for x in executions) else None

    return wait_until(f"the executions of automation {n} to finish", probe, timeout=WAIT)


def test_alias_automation_sends_the_rendered_payload(api, herald, rest, scopes):
    payload = {
        "automation": "${automation_name}",
        "event": "${event_type}",
        "version": "${artifact_version_string}",
        "alias": "${alias}",
        "by": "${event_author}",
        "fixed": "text from the SDK",
    }
    created = api.create_automation(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("prod-fire"))
        >> SendWebhook.from_integration(_hook(api, "acme", "acme-fire"), payload=payload),
        name="fires on prod-fire",
    )
    herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts/resnet/versions/v0/aliases", {"alias": "prod-fire"}
    )
    got = herald.receiver.wait_for(
        "the webhook of `fires on prod-fire`", _for_automation("/hook/fire", "fires on prod-fire"), timeout=WAIT
    )
    assert got.json() == {
        "automation": "fires on prod-fire",
        "event": "ADD_ARTIFACT_ALIAS",
        "version": "acme/vision/resnet:v0",
        "alias": "prod-fire",
        "by": "alice",
        "fixed": "text from the SDK",
    }
    assert got.headers["content-type"].startswith("application/json")

    executions = _finished_executions(rest, created)
    assert len(executions) == 1, executions
    x = executions[0]
    assert (x["automation_name"], x["event_type"], x["action_type"]) == (
        "fires on prod-fire", "ADD_ARTIFACT_ALIAS", "GENERIC_WEBHOOK",
    )
    assert x["request"]["body"] == got.json()
    assert x["attempt_count"] == 1


def test_run_metric_automation_fires_on_logged_history(api, herald, rest, scopes):
    created = api.create_automation(
        OnRunMetric(scope=scopes["project"], filter=RunEvent.metric("sdk_loss").avg(3) > 0.5)
        >> SendWebhook.from_integration(
            _hook(api, "acme", "acme-fire"),
            payload={"automation": "${automation_name}", "event": "${event_type}", "run": "${run_id}",
                     "name": "${run_name}", "metric": "${metric_name}", "value": "${metric_value}"},
        ),
        name="sdk loss too high",
    )
    alice = herald.rest("alice")
    alice.post("/entities/acme/projects/vision/runs", {"id": "sdk-metric-run", "display_name": "metric run"})
    # Windows of 3: 0, 0.5 (not above 0.5), then 1.0 — the condition is met once, at step 4.
    values = [0, 0, 0, 1.5, 1.5, 1.5]
    alice.post(
        "/entities/acme/projects/vision/runs/sdk-metric-run/history",
        {"rows": [{"step": i, "values": {"sdk_loss": v}} for i, v in enumerate(values)]},
    )
    got = herald.receiver.wait_for(
        "the webhook of `sdk loss too high`", _for_automation("/hook/fire", "sdk loss too high"), timeout=WAIT
    )
    assert got.json() == {
        "automation": "sdk loss too high",
        "event": "RUN_METRIC_THRESHOLD",
        "run": "sdk-metric-run",
        "name": "metric run",
        "metric": "sdk_loss",
        "value": "1",
    }
    executions = _finished_executions(rest, created)
    assert [x["event_type"] for x in executions] == ["RUN_METRIC"]


def test_run_state_automation_posts_to_slack(api, herald, rest, scopes):
    slack = next(iter(api.slack_integrations(entity="acme")))
    created = api.create_automation(
        OnRunState(scope=scopes["project"], filter=RunEvent.state.eq("failed"))
        >> SendNotification.from_integration(
            slack, title="Run ${run_name} failed", text="now ${run_status}", level="ERROR"
        ),
        name="sdk run failed",
    )
    alice = herald.rest("alice")
    alice.post("/entities/acme/projects/vision/runs", {"id": "sdk-state-run", "display_name": "doomed run"})
    alice.patch("/entities/acme/projects/vision/runs/sdk-state-run", {"state": "FAILED"})

    def is_ours(r):
        body = _json(r)
        return r.path == "/api/chat.postMessage" and isinstance(body, dict) and "doomed run" in body.get("text", "")

    got = herald.receiver.wait_for("the Slack message of `sdk run failed`", is_ours, timeout=WAIT)
    body = got.json()
    assert body["channel"] == "C0SDKTEST"
    assert got.headers["authorization"] == "Bearer xoxb-sdk-tests"
    assert body["text"].startswith("ERROR: ")
    assert "Run doomed run failed" in body["text"]
    assert "now FAILED" in body["text"]
    assert body["blocks"][0]["text"]["text"].endswith("Run doomed run failed")
    executions = _finished_executions(rest, created)
    assert [(x["event_type"], x["action_type"]) for x in executions] == [("RUN_STATE", "NOTIFICATION")]


def test_link_automation_on_a_registry_fires(api, herald, rest, scopes):
    created = api.create_automation(
        OnLinkArtifact(scope=scopes["registry"], filter=ArtifactEvent.alias.eq("sdk-linked"))
        >> SendWebhook.from_integration(
            _hook(api, "acme-org", "org-hook"),
            payload={"automation": "${automation_name}", "event": "${event_type}",
                     "version": "${artifact_version_string}", "collection": "${artifact_collection_name}"},
        ),
        name="sdk link into registry",
    )
    herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts/resnet/versions/v1/links",
        {"registry": "acme-org/model", "collection": "sdk-linked-models", "aliases": ["sdk-linked"]},
    )
    got = herald.receiver.wait_for(
        "the webhook of `sdk link into registry`", _for_automation("/hook/org", "sdk link into registry"),
        timeout=WAIT,
    )
    assert got.json() == {
        "automation": "sdk link into registry",
        "event": "LINK_ARTIFACT",
        "version": "acme-org/wandb-registry-model/sdk-linked-models:v0",
        "collection": "sdk-linked-models",
    }
    executions = _finished_executions(rest, created)
    assert [x["event_type"] for x in executions] == ["LINK_MODEL"]


def test_a_disabled_automation_does_not_fire(api, herald, rest, scopes):
    event = OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("quiet-check"))
    quiet = api.create_automation(event >> DoNothing(), name="quiet one")
    control = api.create_automation(event >> DoNothing(), name="control one")
    quiet.enabled = False
    assert api.update_automation(quiet).enabled is False

    herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts/resnet/versions/v0/aliases", {"alias": "quiet-check"}
    )
    # Both watch the same event: once the control's execution is there, the event was matched.
    assert len(_finished_executions(rest, control)) == 1
    assert rest.get(f"/automations/{automation_number(quiet)}/executions")["executions"] == []


def test_an_automation_deleted_through_the_sdk_does_not_fire(api, herald, rest, scopes):
    event = OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("deleted-check"))
    doomed = api.create_automation(
        event >> SendWebhook.from_integration(_hook(api, "acme", "acme-fire"), payload={"automation": "${automation_name}"}),
        name="deleted before the event",
    )
    control = api.create_automation(event >> DoNothing(), name="control of the deleted")
    api.delete_automation(doomed)
    herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts/resnet/versions/v1/aliases", {"alias": "deleted-check"}
    )
    assert len(_finished_executions(rest, control)) == 1
    assert not [r for r in herald.receiver.posts_to("/hook/fire") if _json(r) == {"automation": "deleted before the event"}]
    executions = rest.get("/entities/acme/executions?limit=500")["executions"]
    assert "deleted before the event" not in {x["automation_name"] for x in executions}


def test_an_edit_through_the_sdk_takes_effect_at_once(api, herald, rest, scopes):
    """The filter and payload set by `update_automation` are what the next event is matched
    against and what is sent."""
    hook = _hook(api, "acme", "acme-fire")
    created = api.create_automation(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("before-edit"))
        >> SendWebhook.from_integration(hook, payload={"automation": "${automation_name}", "old": "${alias}"}),
        name="edited before it fires",
    )
    api.update_automation(
        created,
        event=OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("after-edit")),
        action=SendWebhook.from_integration(hook, payload={"automation": "${automation_name}", "new": "${alias}"}),
    )
    alice = herald.rest("alice")
    alice.post("/entities/acme/projects/vision/artifacts/resnet/versions/v1/aliases", {"alias": "before-edit"})
    alice.post("/entities/acme/projects/vision/artifacts/resnet/versions/v1/aliases", {"alias": "after-edit"})
    got = herald.receiver.wait_for(
        "the webhook of the edited automation", _for_automation("/hook/fire", "edited before it fires"), timeout=WAIT
    )
    assert got.json() == {"automation": "edited before it fires", "new": "after-edit"}
    # Events are matched in order: the first alias was matched (and skipped) before the second.
    executions = _finished_executions(rest, created)
    assert len(executions) == 1, executions
    assert [r.json() for r in herald.receiver.posts_to("/hook/fire")
            if _for_automation("/hook/fire", "edited before it fires")(r)] == [got.json()]


def test_an_integration_made_through_the_sdk_delivers(api, herald, rest, scopes):
    from wandb.automations import OnCreateArtifact
    from wandb.automations._generated import (
        CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
        CreateGenericWebhookIntegration,
        CreateGenericWebhookIntegrationInput,
    )

    gql_input = CreateGenericWebhookIntegrationInput(
        entity_name="acme", name="made by the sdk", url_endpoint=f"{herald.receiver.url}/hook/sdk-made"
    )
    hook = api._service_api.execute_graphql(
        CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
        {"input": gql_input.model_dump()},
        parse=CreateGenericWebhookIntegration.model_validate_json,
    ).result.integration
    created = api.create_automation(
        OnCreateArtifact(scope=scopes["collection"])
        >> SendWebhook.from_integration(hook, payload={"automation": "${automation_name}", "v": "${artifact_version}",
                                                       "s": "${artifact_version_string}"}),
        name="new version to the sdk hook",
    )
    version = herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts", {"collection": "resnet", "type": "model"}, expect=201
    )
    got = herald.receiver.wait_for(
        "the webhook through the SDK's integration", _for_automation("/hook/sdk-made", "new version to the sdk hook"),
        timeout=WAIT,
    )
    body = got.json()
    assert body["s"] == f"acme/vision/resnet:{version['version']}"
    assert body["v"].startswith("wandb-artifact://_id/")
    assert len(_finished_executions(rest, created)) == 1


def test_a_run_filter_picks_the_runs(api, herald, rest, scopes):
    created = api.create_automation(
        OnRunState(scope=scopes["project"], filter=RunEvent.name.contains("nightly") & RunEvent.state.eq("finished"))
        >> SendWebhook.from_integration(
            _hook(api, "acme", "acme-fire"), payload={"automation": "${automation_name}", "run": "${run_name}"}
        ),
        name="nightly runs finished",
    )
    alice = herald.rest("alice")
    for run, name in (("adhoc-1", "adhoc experiment"), ("nightly-1", "nightly build 1")):
        alice.post("/entities/acme/projects/vision/runs", {"id": run, "display_name": name})
        alice.patch(f"/entities/acme/projects/vision/runs/{run}", {"state": "FINISHED"})
    got = herald.receiver.wait_for(
        "the nightly run's webhook", _for_automation("/hook/fire", "nightly runs finished"), timeout=WAIT
    )
    assert got.json() == {"automation": "nightly runs finished", "run": "nightly build 1"}
    # The ad hoc run finished first, so it was matched (and left out) before.
    assert len(_finished_executions(rest, created)) == 1


def test_a_metric_change_automation_fires(api, herald, rest, scopes):
    created = api.create_automation(
        OnRunMetric(scope=scopes["project"], filter=RunEvent.metric("sdk_acc").avg(2).decreases_by(frac=0.5))
        >> SendWebhook.from_integration(
            _hook(api, "acme", "acme-fire"),
            payload={"automation": "${automation_name}", "event": "${event_type}", "metric": "${metric_name}"},
        ),
        name="sdk accuracy halved",
    )
    alice = herald.rest("alice")
    alice.post("/entities/acme/projects/vision/runs", {"id": "sdk-change-run"})
    # Prior window [1, 1] (mean 1), current [0.2, 0.2] (mean 0.2): down 80%, once, at the 4th value.
    alice.post(
        "/entities/acme/projects/vision/runs/sdk-change-run/history",
        {"rows": [{"step": i, "values": {"sdk_acc": v}} for i, v in enumerate([1, 1, 0.2, 0.2])]},
    )
    got = herald.receiver.wait_for(
        "the metric change webhook", _for_automation("/hook/fire", "sdk accuracy halved"), timeout=WAIT
    )
    assert got.json() == {"automation": "sdk accuracy halved", "event": "RUN_METRIC_CHANGE", "metric": "sdk_acc"}
    assert [x["event_type"] for x in _finished_executions(rest, created)] == ["RUN_METRIC_CHANGE"]


def test_an_sdk_integration_with_secrets_authenticates_and_signs(api, herald, rest, scopes):
    """`accessTokenRef` and `secretRef` of W&B's mutation name team secrets: deliveries carry
    the token as a bearer and the W&B signature (base64 HMAC-SHA256 of the body)."""
    import base64
    import hashlib
    import hmac

    from wandb.automations._generated import (
        CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
        CreateGenericWebhookIntegration,
        CreateGenericWebhookIntegrationInput,
    )

    rest.put("/entities/acme/secrets/SDK_TOKEN", {"value": "token-from-the-sdk-test"})
    rest.put("/entities/acme/secrets/SDK_SIGNING", {"value": "signing-from-the-sdk-test"})
    gql_input = CreateGenericWebhookIntegrationInput(
        entity_name="acme", name="signed by the sdk", url_endpoint=f"{herald.receiver.url}/hook/signed",
        access_token_ref="SDK_TOKEN", secret_ref="SDK_SIGNING",
    )
    hook = api._service_api.execute_graphql(
        CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
        {"input": gql_input.model_dump()},
        parse=CreateGenericWebhookIntegration.model_validate_json,
    ).result.integration
    stored = next(i for i in rest.get("/entities/acme/integrations") if i["name"] == "signed by the sdk")
    assert (stored["access_token_secret"], stored["signing_secret"]) == ("SDK_TOKEN", "SDK_SIGNING")

    api.create_automation(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("signed-check"))
        >> SendWebhook.from_integration(hook, payload={"automation": "${automation_name}"}),
        name="signed delivery",
    )
    herald.rest("alice").post(
        "/entities/acme/projects/vision/artifacts/resnet/versions/v0/aliases", {"alias": "signed-check"}
    )
    got = herald.receiver.wait_for(
        "the signed webhook", _for_automation("/hook/signed", "signed delivery"), timeout=WAIT
    )
    assert got.headers["authorization"] == "Bearer token-from-the-sdk-test"
    expected = base64.b64encode(hmac.new(b"signing-from-the-sdk-test", got.body, hashlib.sha256).digest()).decode()
    assert got.headers["x-wandb-signature"] == expected
