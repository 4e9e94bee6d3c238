"""Listing, fetching, updating and deleting automations through the SDK, and the errors the SDK
makes of herald's 404 and 409."""

from __future__ import annotations

import pytest
import wandb
from wandb.automations import (
    ActionType,
    ArtifactEvent,
    DoNothing,
    OnAddArtifactAlias,
    OnCreateArtifact,
    OnLinkArtifact,
    OnRunMetric,
    RunEvent,
    SendWebhook,
)

from herald_sdk import automation_number, decode_global_id, encode_global_id, integration_number, saved_filter


def _names(automations):
    return [a.name for a in automations]


@pytest.fixture(scope="module")
def listed(api, scopes, integrations):
    """Two automations in acme and one in acme-org, to list."""
    hook = integrations["acme"]["webhook"]
    a = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="list one")
    b = api.create_automation(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("listed"))
        >> SendWebhook.from_integration(hook, payload={"a": "${alias}"}),
        name="list two",
    )
    c = api.create_automation(OnCreateArtifact(scope=scopes["portfolio"]) >> DoNothing(), name="list org")
    return a, b, c


def test_automations_of_an_entity(api, listed, rest):
    a, b, c = listed
    found = list(api.automations(entity="acme"))
    names = _names(found)
    assert {"list one", "list two"} <= set(names)
    assert "list org" not in names
    assert len(names) == len(set(names)), names
    # Exactly what herald holds for acme.
    assert sorted(names) == sorted(x["name"] for x in rest.get("/entities/acme/automations"))
    by_name = {x.name: x for x in found}
    assert by_name["list one"].id == a.id
    assert by_name["list two"].model_dump() == b.model_dump()
    assert [x.name for x in api.automations(entity="acme-org") if x.name == "list org"] == ["list org"]


def test_automations_of_an_entity_by_name(api, listed):
    a, b, _ = listed
    assert [(x.id, x.name) for x in api.automations(entity="acme", name="list two")] == [(b.id, "list two")]
    assert list(api.automations(entity="acme", name="no such automation")) == []
    # A name is looked up in the entity given, not in every entity.
    assert list(api.automations(entity="acme", name="list org")) == []


def test_all_automations_the_caller_can_see(api, listed):
    names = _names(api.automations())
    assert {"list one", "list two", "list org"} <= set(names)
    assert len(names) == len(set(names)), names
    # Walked a project at a time, the same.
    assert sorted(_names(api.automations(per_page=1))) == sorted(names)
    assert [a.id for a in api.automations(name="list two")] == [listed[1].id]


def test_automations_paginate(api, listed, rest):
    everything = _names(api.automations(entity="acme", per_page=50))
    in_pages_of_two = _names(api.automations(entity="acme", per_page=2))
    assert in_pages_of_two == everything
    assert len(everything) >= 2


def test_automation_by_name(api, listed):
    a, b, c = listed
    assert api.automation(name="list one").id == a.id
    assert api.automation(name="list two", entity="acme").model_dump() == b.model_dump()
    assert api.automation(name="list org", entity="acme-org").id == c.id


def test_automation_by_unknown_name_raises(api):
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="never created")
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="never created", entity="acme")


def test_disable(api, rest, scopes):
    event = OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.matches_regex("^rc-[0-9]+$"))
    created = api.create_automation(event >> DoNothing(), name="to disable", description="on until disabled")
    expected_filter = saved_filter(created)
    assert expected_filter == {"$or": [{"$and": [{"alias": {"$regex": "^rc-[0-9]+$"}}]}]}

    a = api.automation(name="to disable", entity="acme")
    a.enabled = False
    updated = api.update_automation(a)
    assert updated.enabled is False
    assert updated.id == created.id

    again = api.automation(name="to disable", entity="acme")
    assert again.enabled is False
    # Nothing else moved: the filter, scope, action and description are as created.
    assert saved_filter(again) == expected_filter
    assert again.scope.id == created.scope.id
    assert again.action.action_type == ActionType.NO_OP
    assert again.description == "on until disabled"
    assert rest.get(f"/automations/{automation_number(again)}")["enabled"] is False

    # And on again, through keyword arguments.
    on = api.update_automation(again, enabled=True)
    assert on.enabled is True
    assert api.automation(name="to disable", entity="acme").enabled is True


def test_rename_and_describe(api, rest, scopes):
    created = api.create_automation(
        OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="before rename"
    )
    a = api.automation(name="before rename", entity="acme")
    a.name = "after rename"
    a.description = "renamed through the SDK"
    renamed = api.update_automation(a)
    assert (renamed.id, renamed.name, renamed.description) == (created.id, "after rename", "renamed through the SDK")
    assert api.automation(name="after rename", entity="acme").id == created.id
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="before rename", entity="acme")
    stored = rest.get(f"/automations/{automation_number(created)}")
    assert (stored["name"], stored["description"]) == ("after rename", "renamed through the SDK")


def test_rename_onto_a_taken_name_is_refused(api, scopes):
    api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="taken name")
    other = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="wants the name")
    with pytest.raises(wandb.errors.CommError) as e:
        api.update_automation(other, name="taken name")
    assert "taken name" in str(e.value)
    assert api.automation(name="wants the name", entity="acme").id == other.id


def test_change_the_filter(api, rest, scopes):
    created = api.create_automation(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("old")) >> DoNothing(),
        name="filter changes",
    )
    new_event = OnAddArtifactAlias(
        scope=scopes["collection"], filter=ArtifactEvent.alias.eq("new") | ArtifactEvent.alias.eq("newer")
    )
    updated = api.update_automation(created, event=new_event)
    expected = {"$or": [{"$and": [{"$or": [{"alias": {"$eq": "new"}}, {"alias": {"$eq": "newer"}}]}]}]}
    assert saved_filter(updated) == expected
    assert saved_filter(api.automation(name="filter changes", entity="acme")) == expected
    assert rest.get(f"/automations/{automation_number(created)}")["event"]["filter"] == expected


def test_change_the_action(api, rest, scopes, integrations):
    created = api.create_automation(
        OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="action changes"
    )
    hook = integrations["acme"]["webhook"]
    payload = {"version": "${artifact_version_string}"}
    updated = api.update_automation(created, action=SendWebhook.from_integration(hook, payload=payload))
    assert updated.action.action_type == ActionType.GENERIC_WEBHOOK
    assert updated.action.integration.id == hook.id
    assert updated.action.request_payload == payload
    again = api.automation(name="action changes", entity="acme")
    assert again.action.request_payload == payload
    assert saved_filter(again) == {"$or": [{"$and": []}]}
    stored = rest.get(f"/automations/{automation_number(created)}")
    assert stored["action"]["type"] == "GENERIC_WEBHOOK"
    assert stored["action"]["payload"] == payload


def test_run_metric_filter_survives_an_update_that_does_not_touch_it(api, scopes, integrations):
    event = OnRunMetric(
        scope=scopes["project"],
        filter=RunEvent.name.contains("baseline") & (RunEvent.metric("val_loss").avg(4) > 2.5),
    )
    hook = integrations["acme"]["webhook"]
    created = api.create_automation(
        event >> SendWebhook.from_integration(hook, payload={"m": "${metric_name}"}), name="metric kept"
    )
    before = saved_filter(created)
    assert before["run_metric_filter"]["threshold_filter"]["threshold"] == 2.5

    a = api.automation(name="metric kept", entity="acme")
    a.description = "only the description changes"
    api.update_automation(a)
    after = api.automation(name="metric kept", entity="acme")
    assert after.description == "only the description changes"
    assert saved_filter(after) == before
    assert after.action.request_payload == {"m": "${metric_name}"}

    # Twice more, disabling and renaming: still the same filter.
    after.enabled = False
    api.update_automation(after)
    renamed = api.update_automation(api.automation(name="metric kept", entity="acme"), name="metric kept 2")
    assert saved_filter(renamed) == before
    assert saved_filter(api.automation(name="metric kept 2", entity="acme")) == before


def test_delete_by_object(api, rest, scopes):
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="delete me")
    assert api.delete_automation(created) is True
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="delete me")
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="delete me", entity="acme")
    rest.get(f"/automations/{automation_number(created)}", expect=404)
    # Deleting again raises.
    with pytest.raises(wandb.errors.CommError):
        api.delete_automation(created)


def test_delete_by_id(api, rest, scopes):
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="delete by id")
    assert api.delete_automation(created.id) is True
    rest.get(f"/automations/{automation_number(created)}", expect=404)
    with pytest.raises(wandb.errors.CommError):
        api.delete_automation(created.id)


def test_delete_unknown_id_raises(api):
    with pytest.raises(wandb.errors.CommError):
        api.delete_automation(encode_global_id("Trigger", 987654))


def test_duplicate_name_is_refused(api, rest, scopes):
    first = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="only once")
    with pytest.raises(wandb.errors.CommError) as e:
        api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="only once")
    # The SDK says this only when herald answers 409.
    assert "Automation 'only once' exists" in str(e.value)
    assert [a["id"] for a in rest.get("/entities/acme/automations", ) if a["name"] == "only once"] == [
        automation_number(first)
    ]


def test_duplicate_name_with_fetch_existing_returns_it(api, scopes):
    first = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="fetch me")
    again = api.create_automation(
        OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="fetch me", fetch_existing=True
    )
    assert again.id == first.id
    assert again.model_dump() == first.model_dump()


def test_update_unknown_id_is_not_found(api, scopes):
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="ghost template")
    ghost = created.model_copy(update={"id": encode_global_id("Trigger", 987654), "name": "ghost"})
    with pytest.raises(wandb.errors.CommError) as e:
        api.update_automation(ghost)
    # The SDK says this only when herald answers 404.
    assert "Automation 'ghost' not found. Unable to edit it." in str(e.value)
    with pytest.raises(ValueError, match="No automations found"):
        api.automation(name="ghost", entity="acme")


def test_update_a_deleted_automation_is_not_found(api, scopes):
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="gone soon")
    api.delete_automation(created)
    created.description = "too late"
    with pytest.raises(wandb.errors.CommError, match="not found"):
        api.update_automation(created)


def test_rest_made_automation_reads_as_made(api, rest, herald):
    made = rest.post(
        "/entities/acme/automations",
        {
            "name": "made over rest",
            "description": "from REST",
            "scope": {"type": "ARTIFACT_COLLECTION", "path": "acme/vision/resnet"},
            "event": {"type": "ADD_ARTIFACT_ALIAS",
                      "filter": {"$or": [{"$and": [{"alias": {"$regex": "^release-"}}]}]}},
            "action": {"type": "GENERIC_WEBHOOK", "integration_id": herald.integrations["acme-hook"],
                       "payload": {"v": "${artifact_version_string}"}},
        },
        expect=201,
    )
    found = api.automation(name="made over rest", entity="acme")
    assert decode_global_id(found.id) == ("Trigger", made["id"])
    assert found.description == "from REST"
    assert found.scope.name == "resnet"
    assert saved_filter(found) == {"$or": [{"$and": [{"alias": {"$regex": "^release-"}}]}]}
    assert found.action.request_payload == {"v": "${artifact_version_string}"}
    assert integration_number(found.action.integration.id) == herald.integrations["acme-hook"]


def test_the_same_name_in_two_entities(api, scopes):
    in_acme = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="twice named")
    in_org = api.create_automation(OnLinkArtifact(scope=scopes["registry"]) >> DoNothing(), name="twice named")
    assert in_acme.id != in_org.id
    with pytest.raises(ValueError, match="Multiple automations found"):
        api.automation(name="twice named")
    assert api.automation(name="twice named", entity="acme").id == in_acme.id
    assert api.automation(name="twice named", entity="acme-org").id == in_org.id


def test_names_with_quotes_and_unicode(api, rest, scopes):
    name = 'say "hi" — déploiement ✓ {"$ne": 1}'
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name=name)
    assert created.name == name
    assert [a.id for a in api.automations(entity="acme", name=name)] == [created.id]
    assert api.automation(name=name, entity="acme").id == created.id
    assert rest.get(f"/automations/{automation_number(created)}")["name"] == name
