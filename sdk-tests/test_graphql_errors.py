"""Bad requests sent through the SDK's own GraphQL client (the way the SDK sends its generated
documents): herald answers each with an error that names the problem, never a 5xx, and
changes nothing."""

from __future__ import annotations

import re

import pytest
from wandb.automations import ArtifactEvent, DoNothing, OnAddArtifactAlias, OnCreateArtifact
from wandb.automations._compat import omit_automation_fragments
from wandb.automations._generated import CREATE_AUTOMATION_GQL, UPDATE_AUTOMATION_GQL
from wandb.automations._inputs import prepare_to_create
from wandb.sdk.lib.service.service_connection import WandbApiFailedError

from herald_sdk import assert_not_a_server_error, decode_global_id, encode_global_id


def _error(api, query, variables=None) -> str:
    """Sends `query` as the SDK sends its generated documents: without the fragments of
    actions the server does not offer (`omit_automation_fragments`)."""
    with pytest.raises(WandbApiFailedError) as e:
        api._service_api.execute_graphql(
            query, variables or {}, omit_fragments=omit_automation_fragments(api._service_api)
        )
    assert_not_a_server_error(e.value)
    return str(e.value)


def _create_input(scopes, name, **override):
    gql_input = prepare_to_create(
        OnAddArtifactAlias(scope=scopes["collection"], filter=ArtifactEvent.alias.eq("x")) >> DoNothing(), name=name
    ).model_dump()
    gql_input.update(override)
    return {"input": gql_input}


def _acme_names(rest):
    return {a["name"] for a in rest.get("/entities/acme/automations")}


def test_malformed_document(api):
    message = _error(api, "query Broken { viewer { id ")
    assert re.search(r"syntax|parse|unexpected|expected|end of", message, re.I), message


def test_unknown_field(api):
    message = _error(api, "query Probe { viewer { id noSuchField } }")
    assert "noSuchField" in message


def test_unknown_root_field(api):
    assert "noSuchRoot" in _error(api, "query Probe { noSuchRoot { id } }")


def test_unknown_mutation(api):
    assert "launchRockets" in _error(api, "mutation Probe { launchRockets(input: {}) { ok } }")


def test_missing_variable(api):
    message = _error(api, CREATE_AUTOMATION_GQL, {})
    assert "input" in message


def test_event_filter_that_is_not_json(api, rest, scopes):
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "not json filter", eventFilter="{not json"))
    assert "eventFilter" in message and "JSON" in message, message
    assert "not json filter" not in _acme_names(rest)


def test_event_filter_with_an_unknown_operator(api, rest, scopes):
    bad = '{"$or":[{"$and":[{"alias":{"$regexx":"^p"}}]}]}'
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "unknown operator", eventFilter=bad))
    assert "eventFilter" in message and "$regexx" in message, message
    assert "unknown operator" not in _acme_names(rest)


def test_event_filter_with_a_bad_regex(api, rest, scopes):
    bad = '{"$or":[{"$and":[{"alias":{"$regex":"(unclosed"}}]}]}'
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "bad regex", eventFilter=bad))
    assert "eventFilter" in message and "regular expression" in message, message
    assert "bad regex" not in _acme_names(rest)


def test_run_metric_filter_missing_its_condition(api, rest, scopes):
    bad = '{"run_filter":"{\\"$and\\":[]}","run_metric_filter":{},"metric_filter":null}'
    message = _error(
        api, CREATE_AUTOMATION_GQL,
        _create_input(scopes, "empty metric filter", eventFilter=bad, triggeringEventType="RUN_METRIC",
                      scopeType="PROJECT", scopeID=scopes["project"].id),
    )
    assert "run_metric_filter" in message or "threshold_filter" in message, message
    assert "empty metric filter" not in _acme_names(rest)


def test_unknown_event_type(api, rest, scopes):
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "no such event", triggeringEventType="EXPLODE"))
    assert "EXPLODE" in message
    assert "no such event" not in _acme_names(rest)


def test_run_event_on_a_registry(api, rest, scopes):
    """herald watches runs in projects and entities, not in registries."""
    message = _error(
        api, CREATE_AUTOMATION_GQL,
        _create_input(scopes, "runs in a registry", triggeringEventType="RUN_STATE", scopeType="PROJECT",
                      scopeID=scopes["registry"].id,
                      eventFilter='{"run_filter":"{\\"$and\\":[]}","run_state_filter":{"states":["FAILED"]}}'),
    )
    assert "RUN_STATE" in message or "registry" in message.lower(), message
    assert "runs in a registry" not in {a["name"] for a in rest.get("/entities/acme-org/automations")}


def test_unknown_scope(api, rest, scopes):
    kind, _ = decode_global_id(scopes["collection"].id)  # an id of the kind herald gives them
    unknown = encode_global_id(kind, 987654)
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "nowhere", scopeID=unknown))
    assert "scopeID" in message and unknown in message, message
    assert "nowhere" not in _acme_names(rest)


def test_scope_id_that_is_not_an_id(api, rest, scopes):
    message = _error(api, CREATE_AUTOMATION_GQL, _create_input(scopes, "bad scope id", scopeID="%%%"))
    assert "scopeID" in message or "%%%" in message, message
    assert "bad scope id" not in _acme_names(rest)


def test_update_with_a_bad_filter_changes_nothing(api, rest, scopes):
    created = api.create_automation(OnCreateArtifact(scope=scopes["collection"]) >> DoNothing(), name="kept as is")
    gql_input = _create_input(scopes, "kept as is", eventFilter='{"$or": 5}', triggeringEventType="CREATE_ARTIFACT")["input"]
    gql_input["id"] = created.id
    message = _error(api, UPDATE_AUTOMATION_GQL, {"input": gql_input})
    assert "filter" in message.lower() or "$or" in message, message
    again = api.automation(name="kept as is", entity="acme")
    assert again.model_dump() == created.model_dump()
