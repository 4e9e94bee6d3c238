"""Integrations made over REST, as the SDK lists them; and the SDK's own mutation that makes a
webhook integration (`createGenericWebhookIntegration`), sent the way the SDK sends its
generated documents."""

from __future__ import annotations

import pytest
from wandb.automations import SlackIntegration, WebhookIntegration
from wandb.automations._generated import (
    CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
    CreateGenericWebhookIntegration,
    CreateGenericWebhookIntegrationInput,
)
from wandb.sdk.lib.service.service_connection import WandbApiFailedError

from herald_sdk import ORG_SLACK_CHANNEL, SLACK_CHANNEL, SLACK_WORKSPACE, integration_number


def _rest_webhooks(rest, entity):
    """{name: (url, id)} of the entity's webhook integrations, as REST lists them."""
    return {i["name"]: (i["url"], i["id"]) for i in rest.get(f"/entities/{entity}/integrations") if i["kind"] == "webhook"}


def test_integrations_lists_acmes_webhooks_and_slack(api, herald, rest):
    found = list(api.integrations(entity="acme"))
    webhooks = {i.name: i for i in found if isinstance(i, WebhookIntegration)}
    slacks = [i for i in found if isinstance(i, SlackIntegration)]
    assert len(webhooks) + len(slacks) == len(found), f"neither webhook nor Slack: {found!r}"
    # Exactly acme's (other tests add some through the SDK), nothing of another entity.
    assert {n: (h.url_endpoint, integration_number(h.id)) for n, h in webhooks.items()} == _rest_webhooks(rest, "acme")
    assert {"acme-hook", "acme-fire"} <= set(webhooks)
    r = herald.receiver.url
    assert webhooks["acme-hook"].url_endpoint == f"{r}/hook/acme"
    assert webhooks["acme-fire"].url_endpoint == f"{r}/hook/fire"
    assert integration_number(webhooks["acme-hook"].id) == herald.integrations["acme-hook"]
    assert integration_number(webhooks["acme-fire"].id) == herald.integrations["acme-fire"]
    assert len(slacks) == 1, slacks
    assert slacks[0].channel_name == SLACK_CHANNEL
    assert slacks[0].team_name == SLACK_WORKSPACE
    assert integration_number(slacks[0].id) == herald.integrations["acme-slack"]


def test_webhook_integrations_yields_only_webhooks(api, herald, rest):
    hooks = list(api.webhook_integrations(entity="acme"))
    assert all(isinstance(h, WebhookIntegration) for h in hooks), hooks
    assert all(h.typename__ == "GenericWebhookIntegration" for h in hooks)
    by_name = {h.name: h.url_endpoint for h in hooks}
    r = herald.receiver.url
    assert {"acme-hook": f"{r}/hook/acme", "acme-fire": f"{r}/hook/fire"}.items() <= by_name.items()
    assert by_name == {n: url for n, (url, _) in _rest_webhooks(rest, "acme").items()}
    # The documented way to pick one by its URL.
    mine = [h for h in api.webhook_integrations(entity="acme") if h.url_endpoint.endswith("/hook/fire")]
    assert [h.name for h in mine] == ["acme-fire"]


def test_slack_integrations_yields_only_slack(api, herald):
    slacks = list(api.slack_integrations(entity="acme"))
    assert [(s.typename__, s.channel_name, s.team_name) for s in slacks] == [
        ("SlackIntegration", SLACK_CHANNEL, SLACK_WORKSPACE)
    ]
    team_alerts = [s for s in api.slack_integrations(entity="acme") if s.channel_name.startswith("#ml-")]
    assert len(team_alerts) == 1


def test_an_organizations_integrations_are_its_own(api, herald):
    found = list(api.integrations(entity="acme-org"))
    assert [(h.name, h.url_endpoint) for h in found if isinstance(h, WebhookIntegration)] == [
        ("org-hook", f"{herald.receiver.url}/hook/org")
    ]
    assert [(s.channel_name, integration_number(s.id)) for s in found if isinstance(s, SlackIntegration)] == [
        (ORG_SLACK_CHANNEL, herald.integrations["org-slack"])
    ]
    assert len(found) == 2, found


def _create_webhook(api, **fields):
    gql_input = CreateGenericWebhookIntegrationInput(**fields)
    return api._service_api.execute_graphql(
        CREATE_GENERIC_WEBHOOK_INTEGRATION_GQL,
        {"input": gql_input.model_dump()},
        parse=CreateGenericWebhookIntegration.model_validate_json,
    )


def test_create_generic_webhook_integration_through_the_sdk_client(api, herald, rest):
    url = f"{herald.receiver.url}/hook/sdk"
    data = _create_webhook(api, entity_name="acme", name="sdk-hook", url_endpoint=url)
    created = data.result.integration
    assert created.typename__ == "GenericWebhookIntegration"
    assert created.name == "sdk-hook"
    assert created.url_endpoint == url

    # herald stored it: REST lists it under the same id, and the SDK lists it too.
    stored = {i["name"]: i for i in rest.get("/entities/acme/integrations")}
    assert stored["sdk-hook"]["kind"] == "webhook"
    assert stored["sdk-hook"]["url"] == url
    assert stored["sdk-hook"]["id"] == integration_number(created.id)
    listed = {h.name: h for h in api.webhook_integrations(entity="acme")}
    assert listed["sdk-hook"].id == created.id
    assert listed["sdk-hook"].url_endpoint == url

    # A second one of the same name is refused, naming it.
    with pytest.raises(WandbApiFailedError) as e:
        _create_webhook(api, entity_name="acme", name="sdk-hook", url_endpoint=url + "2")
    assert "sdk-hook" in str(e.value)
    assert e.value.response.http_status < 500
    assert [i["url"] for i in rest.get("/entities/acme/integrations") if i["name"] == "sdk-hook"] == [url]


def test_create_generic_webhook_integration_refuses_a_viewer(bob_api, rest):
    with pytest.raises(WandbApiFailedError) as e:
        _create_webhook(bob_api, entity_name="acme", name="bobs-hook", url_endpoint="http://127.0.0.1:9/x")
    assert e.value.response.http_status < 500
    assert "bobs-hook" not in {i["name"] for i in rest.get("/entities/acme/integrations")}


def test_create_generic_webhook_integration_refuses_a_bad_url(api, rest):
    with pytest.raises(WandbApiFailedError) as e:
        _create_webhook(api, entity_name="acme", name="bad-url-hook", url_endpoint="ftp://example.com/x")
    message = str(e.value)
    assert "url" in message.lower(), message
    assert e.value.response.http_status < 500
    assert "bad-url-hook" not in {i["name"] for i in rest.get("/entities/acme/integrations")}


def test_create_generic_webhook_integration_in_another_team_is_refused(carol_api, rest):
    with pytest.raises(WandbApiFailedError) as e:
        _create_webhook(carol_api, entity_name="acme", name="carols-hook", url_endpoint="http://127.0.0.1:9/x")
    assert e.value.response.http_status < 500
    assert "carols-hook" not in {i["name"] for i in rest.get("/entities/acme/integrations")}


def test_integrations_paginate(api):
    everything = [(type(i).__name__, i.id) for i in api.integrations(entity="acme")]
    one_at_a_time = [(type(i).__name__, i.id) for i in api.integrations(entity="acme", per_page=1)]
    assert one_at_a_time == everything
    assert len(everything) >= 3
