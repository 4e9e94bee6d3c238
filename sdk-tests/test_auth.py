"""The SDK logs in with an API key (HTTP basic auth, user `api`): a known key is its user, an
unknown one is refused before anything else is sent."""

from __future__ import annotations

import pytest
import wandb


def test_the_key_is_its_user(api, bob_api):
    assert api.default_entity == "alice"
    assert api.viewer.username == "alice"
    assert bob_api.viewer.username == "bob"


def test_an_unknown_key_is_refused(herald):
    with pytest.raises(wandb.errors.AuthenticationError, match="invalid API key"):
        wandb.Api(overrides={"base_url": herald.sdk_url}, api_key="k" * 48)
