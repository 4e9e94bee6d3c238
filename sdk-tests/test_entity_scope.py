"""Automations on a whole team or organization (scope ENTITY), which herald offers (the
AUTOMATION_SCOPE_ENTITY server feature): made through the SDK from `api.organization()` and
`api.team()`, and made over REST then read and changed through the SDK."""

from __future__ import annotations

from wandb.automations import (
    ArtifactEvent,
    DoNothing,
    OnLinkArtifact,
    OnRunState,
    OrgScope,
    RunEvent,
    ScopeType,
    TeamScope,
)

from herald_sdk import automation_number, decode_global_id, saved_filter


def test_organization_scope(api, rest):
    org = api.organization("acme-org")
    created = api.create_automation(
        OnLinkArtifact(scope=org, filter=ArtifactEvent.alias.eq("org-wide")) >> DoNothing(),
        name="anything linked in acme-org",
    )
    assert isinstance(created.scope, OrgScope)
    assert (created.scope.scope_type, created.scope.name, created.scope.entity_type) == (
        ScopeType.ENTITY, "acme-org", "organization",
    )
    assert created.scope.id == org.org_entity.id
    assert saved_filter(created) == {"$or": [{"$and": [{"alias": {"$eq": "org-wide"}}]}]}
    stored = rest.get(f"/automations/{automation_number(created)}")
    assert (stored["entity"], stored["scope"]["type"], stored["scope"]["path"]) == ("acme-org", "ENTITY", "acme-org")
    assert api.automation(name="anything linked in acme-org", entity="acme-org").model_dump() == created.model_dump()


def test_team_scope(api, rest):
    team = api.team("acme")
    created = api.create_automation(
        OnRunState(scope=team, filter=RunEvent.state.eq("failed")) >> DoNothing(), name="any acme run failed"
    )
    assert isinstance(created.scope, TeamScope)
    assert (created.scope.scope_type, created.scope.name) == (ScopeType.ENTITY, "acme")
    stored = rest.get(f"/automations/{automation_number(created)}")
    assert (stored["scope"]["type"], stored["scope"]["path"]) == ("ENTITY", "acme")


def test_rest_made_entity_automation_reads_and_updates_through_the_sdk(api, rest):
    made = rest.post(
        "/entities/acme/automations",
        {
            "name": "rest team scope",
            "scope": {"type": "ENTITY", "path": "acme"},
            "event": {"type": "RUN_STATE",
                      "filter": {"run_filter": '{"$and":[]}', "run_state_filter": {"states": ["FINISHED"]}}},
            "action": {"type": "NO_OP"},
        },
        expect=201,
    )
    found = api.automation(name="rest team scope", entity="acme")
    assert decode_global_id(found.id) == ("Trigger", made["id"])
    assert isinstance(found.scope, TeamScope)
    assert found.scope.name == "acme"
    assert saved_filter(found) == {"run_filter": '{"$and":[]}', "run_state_filter": {"states": ["FINISHED"]}}

    found.enabled = False
    updated = api.update_automation(found)
    assert updated.enabled is False
    assert isinstance(updated.scope, TeamScope)
    stored = rest.get(f"/automations/{made['id']}")
    assert (stored["enabled"], stored["scope"]["type"], stored["scope"]["path"]) == (False, "ENTITY", "acme")
    assert stored["event"]["filter"]["run_state_filter"] == {"states": ["FINISHED"]}
