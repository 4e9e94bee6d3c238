"""Who sees and changes what through the SDK. carol belongs to the team `other` only: she sees
none of acme's automations or integrations (an empty list or an error, never acme's data) and
cannot create, change or delete automations there. bob is a VIEWER of acme: he reads its
automations but cannot create, change or delete them."""

from __future__ import annotations

import pytest
import wandb
from wandb.automations import DoNothing, OnCreateArtifact, OnRunState, RunEvent, SendWebhook
from wandb.sdk.lib.service.service_connection import WandbApiFailedError

from herald_sdk import assert_not_a_server_error, automation_number

LISTING_ERRORS = (wandb.errors.CommError, ValueError, WandbApiFailedError)


@pytest.fixture(scope="module")
def acme_automation(api, scopes):
    return api.create_automation(
        OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="acme private", description="for acme"
    )


@pytest.fixture(scope="module")
def carols_automation(carol_api, herald):
    sandbox = carol_api.project("sandbox", entity="other")
    hook = next(h for h in carol_api.webhook_integrations(entity="other") if h.name == "other-hook")
    return carol_api.create_automation(
        OnRunState(scope=sandbox, filter=RunEvent.state.eq("failed")) >> SendWebhook.from_integration(hook),
        name="carols own",
    )


def _acme_names(rest):
    return {a["name"] for e in ("acme", "acme-org") for a in rest.get(f"/entities/{e}/automations")}


def _list_or_error(make):
    """A listing's names, or the error it raised; an error must not be a 5xx nor quote acme's
    data."""
    try:
        return [x.name for x in make()]
    except LISTING_ERRORS as e:
        assert_not_a_server_error(e)
        return []


def test_carol_sees_her_own_automation_and_nothing_of_acme(carol_api, rest, acme_automation, carols_automation):
    names = [a.name for a in carol_api.automations()]
    assert "carols own" in names
    assert not set(names) & _acme_names(rest)
    assert [a.id for a in carol_api.automations(entity="other")] == [carols_automation.id]


def test_carol_cannot_list_acmes_automations(carol_api, rest, acme_automation):
    assert _list_or_error(lambda: carol_api.automations(entity="acme")) == []
    assert _list_or_error(lambda: carol_api.automations(entity="acme", name="acme private")) == []
    assert _list_or_error(lambda: carol_api.automations(entity="acme-org")) == []
    with pytest.raises(ValueError):
        carol_api.automation(name="acme private")
    with pytest.raises((ValueError, wandb.errors.CommError, WandbApiFailedError)):
        carol_api.automation(name="acme private", entity="acme")


def test_carol_cannot_list_acmes_integrations(carol_api):
    assert _list_or_error(lambda: carol_api.integrations(entity="acme")) == []
    assert _list_or_error(lambda: carol_api.webhook_integrations(entity="acme")) == []
    assert _list_or_error(lambda: carol_api.slack_integrations(entity="acme")) == []
    assert _list_or_error(lambda: carol_api.integrations(entity="acme-org")) == []
    # Her own team's are there.
    assert [h.name for h in carol_api.webhook_integrations(entity="other")] == ["other-hook"]


def test_acme_cannot_see_carols_automation(api, carols_automation):
    assert _list_or_error(lambda: api.automations(entity="other")) == []
    assert "carols own" not in [a.name for a in api.automations()]


def test_carol_cannot_create_in_acme(carol_api, rest, scopes):
    with pytest.raises(wandb.errors.CommError) as e:
        carol_api.create_automation(
            OnRunState(scope=scopes["project"], filter=RunEvent.state.eq("failed")) >> DoNothing(),
            name="carol was here",
        )
    assert_not_a_server_error(e.value)
    assert "carol was here" not in _acme_names(rest)
    assert "carol was here" not in {a["name"] for a in rest.get("/entities/other/automations")}


def test_carol_cannot_use_acmes_integration(carol_api, rest, integrations):
    sandbox = carol_api.project("sandbox", entity="other")
    with pytest.raises(wandb.errors.CommError) as e:
        carol_api.create_automation(
            OnRunState(scope=sandbox, filter=RunEvent.state.eq("failed"))
            >> SendWebhook.from_integration(integrations["acme"]["webhook"]),
            name="carol borrows a hook",
        )
    assert_not_a_server_error(e.value)
    assert "carol borrows a hook" not in {a["name"] for a in rest.get("/entities/other/automations")}


def test_carol_cannot_change_or_delete_acmes_automation(carol_api, rest, acme_automation):
    n = automation_number(acme_automation)
    with pytest.raises(wandb.errors.CommError) as e:
        carol_api.update_automation(acme_automation, description="carol's now")
    assert_not_a_server_error(e.value)
    with pytest.raises(wandb.errors.CommError) as e:
        carol_api.update_automation(acme_automation, enabled=False)
    assert_not_a_server_error(e.value)
    with pytest.raises(wandb.errors.CommError) as e:
        carol_api.delete_automation(acme_automation)
    assert_not_a_server_error(e.value)
    stored = rest.get(f"/automations/{n}")
    assert (stored["description"], stored["enabled"]) == ("for acme", True)


def test_bob_reads_acmes_automations(bob_api, acme_automation):
    assert "acme private" in [a.name for a in bob_api.automations(entity="acme")]
    found = bob_api.automation(name="acme private", entity="acme")
    assert found.model_dump() == acme_automation.model_dump()


def test_bob_cannot_create(bob_api, rest, scopes):
    with pytest.raises(wandb.errors.CommError) as e:
        bob_api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="bob was here")
    assert_not_a_server_error(e.value)
    assert "bob was here" not in _acme_names(rest)


def test_bob_cannot_change_or_delete(bob_api, rest, acme_automation):
    n = automation_number(acme_automation)
    with pytest.raises(wandb.errors.CommError) as e:
        bob_api.update_automation(acme_automation, enabled=False)
    assert_not_a_server_error(e.value)
    with pytest.raises(wandb.errors.CommError) as e:
        bob_api.delete_automation(acme_automation)
    assert_not_a_server_error(e.value)
    stored = rest.get(f"/automations/{n}")
    assert (stored["name"], stored["enabled"]) == ("acme private", True)
