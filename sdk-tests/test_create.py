"""`api.create_automation` for every event the SDK offers herald with every action, as the
SDK's documentation writes them; each created automation is checked as returned, as read back
through the SDK, and as herald's REST API shows it."""

from __future__ import annotations

import pytest
from wandb.automations import (
    ActionType,
    ArtifactEvent,
    DoNothing,
    EventType,
    OnAddArtifactAlias,
    OnAddArtifactTag,
    OnAddCollectionTag,
    OnCreateArtifact,
    OnLinkArtifact,
    OnRemoveArtifactTag,
    OnRunMetric,
    OnRunState,
    OnUnlinkArtifact,
    ProjectScope,
    RegistryScope,
    RunEvent,
    ScopeType,
    SendNotification,
    SendWebhook,
)
from wandb.automations._generated import AlertSeverity
from wandb.automations.scopes import _ArtifactPortfolioScope, _ArtifactSequenceScope

from herald_sdk import automation_number, input_filter, integration_number, saved_filter


# Each event: (how to make it, the entity that owns it, the scope class and type it comes back
# with, its event type, the filter JSON herald must keep).
EMPTY = {"$or": [{"$and": []}]}
EVENTS = {
    "create-on-collection": (
        lambda s: OnCreateArtifact(scope=s["collection"]),
        "acme", _ArtifactSequenceScope, ScopeType.ARTIFACT_COLLECTION, EventType.CREATE_ARTIFACT, EMPTY,
    ),
    "alias-on-collection": (
        lambda s: OnAddArtifactAlias(scope=s["collection"], filter=ArtifactEvent.alias.matches_regex("^prod")),
        "acme", _ArtifactSequenceScope, ScopeType.ARTIFACT_COLLECTION, EventType.ADD_ARTIFACT_ALIAS,
        {"$or": [{"$and": [{"alias": {"$regex": "^prod"}}]}]},
    ),
    "link-on-registry": (
        lambda s: OnLinkArtifact(scope=s["registry"]),
        "acme-org", RegistryScope, ScopeType.PROJECT, EventType.LINK_MODEL, EMPTY,
    ),
    "link-on-portfolio": (
        lambda s: OnLinkArtifact(scope=s["portfolio"], filter=ArtifactEvent.alias.eq("production")),
        "acme-org", _ArtifactPortfolioScope, ScopeType.ARTIFACT_COLLECTION, EventType.LINK_MODEL,
        {"$or": [{"$and": [{"alias": {"$eq": "production"}}]}]},
    ),
    "metric-on-project": (
        lambda s: OnRunMetric(scope=s["project"], filter=RunEvent.metric("loss").avg(5) < 0.1),
        "acme", ProjectScope, ScopeType.PROJECT, EventType.RUN_METRIC,
        {
            "run_filter": '{"$and":[]}',
            "run_metric_filter": {
                "threshold_filter": {
                    "name": "loss", "agg_op": "AVERAGE", "window_size": 5, "cmp_op": "$lt", "threshold": 0.1,
                }
            },
            "metric_filter": None,
        },
    ),
}

PAYLOAD = {"event": "${event_type}", "by": "${event_author}", "fixed": "text", "count": 1}
ACTIONS = {
    "webhook": lambda ig: SendWebhook.from_integration(ig["webhook"], payload=PAYLOAD),
    "slack": lambda ig: SendNotification.from_integration(
        ig["slack"], title="Heads up: ${event_type}", text="by ${event_author}", level="WARN"
    ),
    "noop": lambda ig: DoNothing(),
}

SCOPE_PATHS = {
    "collection": "acme/vision/resnet",
    "project": "acme/vision",
    "registry": "acme-org/wandb-registry-model",
    "portfolio": "acme-org/wandb-registry-model/classifiers",
}


def check_action(automation, action_key, integration_set):
    action = automation.action
    if action_key == "webhook":
        assert action.action_type == ActionType.GENERIC_WEBHOOK
        assert action.integration.id == integration_set["webhook"].id
        assert action.request_payload == PAYLOAD
    elif action_key == "slack":
        assert action.action_type == ActionType.NOTIFICATION
        assert action.integration.id == integration_set["slack"].id
        assert action.title == "Heads up: ${event_type}"
        assert action.message == "by ${event_author}"
        assert action.severity == AlertSeverity.WARN
    else:
        assert action.action_type == ActionType.NO_OP


def check_rest(rest, automation, owner, scope_key, event_type, action_key, integration_set):
    stored = rest.get(f"/automations/{automation_number(automation)}")
    assert stored["entity"] == owner
    assert stored["created_by"] == "alice"
    assert stored["name"] == automation.name
    assert stored["description"] == automation.description
    assert stored["enabled"] is True
    assert stored["scope"]["path"] == SCOPE_PATHS[scope_key]
    assert stored["event"]["type"] == event_type.value
    action = stored["action"]
    if action_key == "webhook":
        assert action["type"] == "GENERIC_WEBHOOK"
        assert action["integration_id"] == integration_number(integration_set["webhook"].id)
        assert action["payload"] == PAYLOAD
    elif action_key == "slack":
        assert action["type"] == "NOTIFICATION"
        assert action["integration_id"] == integration_number(integration_set["slack"].id)
        assert (action["title"], action["message"], action["severity"]) == (
            "Heads up: ${event_type}", "by ${event_author}", "WARN",
        )
    else:
        assert action["type"] == "NO_OP"


@pytest.mark.parametrize("action_key", ACTIONS)
@pytest.mark.parametrize("event_key", EVENTS)
def test_create(api, rest, scopes, integrations, event_key, action_key):
    make_event, owner, scope_cls, scope_type, event_type, expected_filter = EVENTS[event_key]
    scope_key = event_key.rsplit("-on-", 1)[1]
    event = make_event(scopes)
    assert input_filter(event) == expected_filter  # what the SDK sends, as this test expects
    name = f"{event_key} {action_key}"
    created = api.create_automation(
        event >> ACTIONS[action_key](integrations[owner]),
        name=name,
        description=f"{event_key} then {action_key}",
    )

    assert created.name == name
    assert created.description == f"{event_key} then {action_key}"
    assert created.enabled is True
    assert isinstance(created.scope, scope_cls), created.scope
    assert created.scope.scope_type == scope_type
    assert created.scope.id == scopes[scope_key].id
    assert created.event.event_type == event_type
    assert saved_filter(created) == expected_filter
    check_action(created, action_key, integrations[owner])
    check_rest(rest, created, owner, scope_key, event_type, action_key, integrations[owner])

    # Read back through the SDK: the same automation, field for field.
    again = api.automation(name=name, entity=owner)
    assert again.model_dump() == created.model_dump()


def test_link_event_is_link_model_on_the_wire(api, herald, rest, scopes):
    """The SDK calls it LINK_ARTIFACT; the server's value, sent and returned, is LINK_MODEL."""
    import json

    mark = herald.proxy.mark()
    created = api.create_automation(
        OnLinkArtifact(scope=scopes["registry"]) >> DoNothing(), name="link wire name"
    )
    assert created.event.event_type is EventType.LINK_ARTIFACT
    exchange = next(e for e in herald.proxy.since(mark) if b"createFilterTrigger" in e.request)
    assert json.loads(exchange.request)["variables"]["input"]["triggeringEventType"] == "LINK_MODEL"
    answer = json.loads(exchange.response)["data"]["result"]["trigger"]
    assert answer["event"]["eventType"] == "LINK_MODEL"
    assert rest.get(f"/automations/{automation_number(created)}")["event"]["type"] == "LINK_MODEL"


RUN_EVENTS = {
    "threshold with run filter": (
        lambda p: OnRunMetric(scope=p, filter=RunEvent.name.contains("prod") & (RunEvent.metric("loss") > 1)),
        EventType.RUN_METRIC,
        {
            "run_filter": '{"$and":[{"display_name":{"$contains":"prod"}}]}',
            "run_metric_filter": {
                "threshold_filter": {"name": "loss", "agg_op": None, "window_size": 1, "cmp_op": "$gt", "threshold": 1}
            },
            "metric_filter": None,
        },
    ),
    "max threshold": (
        lambda p: OnRunMetric(scope=p, filter=RunEvent.metric("acc").max(10) >= 0.95),
        EventType.RUN_METRIC,
        {
            "run_filter": '{"$and":[]}',
            "run_metric_filter": {
                "threshold_filter": {"name": "acc", "agg_op": "MAX", "window_size": 10, "cmp_op": "$gte", "threshold": 0.95}
            },
            "metric_filter": None,
        },
    ),
    "relative change": (
        lambda p: OnRunMetric(scope=p, filter=RunEvent.metric("acc").avg(3).decreases_by(frac=0.1)),
        EventType.RUN_METRIC_CHANGE,
        {
            "run_filter": '{"$and":[]}',
            "run_metric_filter": {
                "change_filter": {
                    "name": "acc", "agg_op": "AVERAGE", "current_window_size": 3, "prior_window_size": 3,
                    "change_amount": 0.1, "change_type": "RELATIVE", "change_dir": "DECREASE",
                }
            },
            "metric_filter": None,
        },
    ),
    "absolute change": (
        lambda p: OnRunMetric(scope=p, filter=RunEvent.metric("loss").changes_by(diff=2)),
        EventType.RUN_METRIC_CHANGE,
        {
            "run_filter": '{"$and":[]}',
            "run_metric_filter": {
                "change_filter": {
                    "name": "loss", "agg_op": None, "current_window_size": 1, "prior_window_size": 1,
                    "change_amount": 2, "change_type": "ABSOLUTE", "change_dir": "ANY",
                }
            },
            "metric_filter": None,
        },
    ),
    "zscore": (
        lambda p: OnRunMetric(scope=p, filter=RunEvent.metric("loss").zscore(10) > 2),
        EventType.RUN_METRIC_ZSCORE,
        {
            "run_filter": '{"$and":[]}',
            "run_metric_filter": {
                "zscore_filter": {"name": "loss", "window_size": 10, "threshold": 2, "change_dir": "INCREASE"}
            },
            "metric_filter": None,
        },
    ),
    "state": (
        lambda p: OnRunState(scope=p, filter=RunEvent.state.in_(["finished", "failed"])),
        EventType.RUN_STATE,
        {"run_filter": '{"$and":[]}', "run_state_filter": {"states": ["FAILED", "FINISHED"]}},
    ),
}


@pytest.mark.parametrize("key", RUN_EVENTS)
def test_run_events_keep_their_filters(api, rest, scopes, integrations, key):
    make_event, event_type, expected = RUN_EVENTS[key]
    event = make_event(scopes["project"])
    assert input_filter(event) == expected
    created = api.create_automation(
        event >> SendWebhook.from_integration(integrations["acme"]["webhook"]), name=f"run {key}"
    )
    assert created.event.event_type == event_type
    assert saved_filter(created) == expected
    assert rest.get(f"/automations/{automation_number(created)}")["event"]["type"] == event_type.value
    again = api.automation(name=f"run {key}", entity="acme")
    assert saved_filter(again) == expected


TAG_EVENTS = {
    "add artifact tag": (lambda c: OnAddArtifactTag(scope=c, filter=ArtifactEvent.tag.eq("gold")),
                         EventType.ADD_ARTIFACT_TAG, {"$or": [{"$and": [{"tag": {"$eq": "gold"}}]}]}),
    "remove artifact tag": (lambda c: OnRemoveArtifactTag(scope=c), EventType.REMOVE_ARTIFACT_TAG, EMPTY),
    "add collection tag": (lambda c: OnAddCollectionTag(scope=c), EventType.ADD_COLLECTION_TAG, EMPTY),
}


@pytest.mark.parametrize("key", TAG_EVENTS)
def test_tag_events(api, scopes, key):
    """Events the SDK sends only when the server says it supports them (server features)."""
    make_event, event_type, expected = TAG_EVENTS[key]
    created = api.create_automation(make_event(scopes["collection"]) >> DoNothing(), name=f"tag {key}")
    assert created.event.event_type == event_type
    assert saved_filter(created) == expected


def test_unlink_event_on_registry(api, scopes):
    created = api.create_automation(OnUnlinkArtifact(scope=scopes["registry"]) >> DoNothing(), name="unlink registry")
    assert created.event.event_type == EventType.UNLINK_ARTIFACT
    assert isinstance(created.scope, RegistryScope)


def test_created_disabled(api, rest, scopes):
    created = api.create_automation(
        OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="born disabled", enabled=False
    )
    assert created.enabled is False
    assert rest.get(f"/automations/{automation_number(created)}")["enabled"] is False


def test_create_with_unknown_template_variable_names_it(api, scopes, integrations, rest):
    import wandb

    with pytest.raises(wandb.errors.CommError) as e:
        api.create_automation(
            OnCreateArtifact(scope=scopes["collection"])
            >> SendWebhook.from_integration(integrations["acme"]["webhook"], payload={"x": "${no_such_variable}"}),
            name="bad template",
        )
    assert "no_such_variable" in str(e.value)
    assert "bad template" not in {a["name"] for a in rest.get("/entities/acme/automations")}


def test_webhook_without_payload_comes_back_without_one(api, rest, scopes, integrations):
    """Saved without a payload, the action has none (`requestPayload: null`, as W&B answers):
    herald sends the event's default then. Were the default for this event stored instead,
    the SDK would send it back on every update, and an automation moved to another event
    (here a run state) would keep posting the metric event's variables."""
    hook = integrations["acme"]["webhook"]
    created = api.create_automation(
        OnRunMetric(scope=scopes["project"], filter=RunEvent.metric("loss") > 3)
        >> SendWebhook.from_integration(hook),
        name="no payload given",
    )
    assert created.action.request_payload is None
    moved = api.update_automation(
        created, event=OnRunState(scope=scopes["project"], filter=RunEvent.state.eq("finished"))
    )
    assert moved.action.request_payload is None


def test_an_integration_of_another_entity_is_refused(api, rest, scopes, integrations):
    """alice may use both acme's and acme-org's integrations, but an automation only its own
    entity's: this one belongs to acme (its scope is acme's collection)."""
    import wandb

    with pytest.raises(wandb.errors.CommError) as e:
        api.create_automation(
            OnCreateArtifact(scope=scopes["collection"])
            >> SendWebhook.from_integration(integrations["acme-org"]["webhook"]),
            name="borrowed org hook",
        )
    assert "integration" in str(e.value).lower()
    assert "borrowed org hook" not in {a["name"] for a in rest.get("/entities/acme/automations")}


def test_moving_an_automation_to_another_entitys_scope_is_refused(api, rest, scopes):
    import wandb

    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="stays in acme")
    with pytest.raises(wandb.errors.CommError) as e:
        api.update_automation(created, scope=scopes["portfolio"])
    assert "scope" in str(e.value).lower()
    stored = rest.get(f"/automations/{automation_number(created)}")
    assert (stored["entity"], stored["scope"]["path"]) == ("acme", "acme/vision/resnet")
