"""What an automation can watch, fetched through the SDK: a project, an artifact collection
(a sequence), a registry, and a collection inside a registry (a portfolio)."""

from __future__ import annotations

import pytest
from wandb.automations import ProjectScope, RegistryScope, ScopeType
from wandb.automations._validators import parse_scope
from wandb.automations.scopes import _ArtifactPortfolioScope, _ArtifactSequenceScope

from herald_sdk import decode_global_id


def test_project(api, rest):
    project = api.project("vision", entity="acme")
    kind, number = decode_global_id(project.id)
    assert kind == "Project"
    assert number == rest.get("/entities/acme/projects/vision")["id"]
    scope = parse_scope(project)
    assert isinstance(scope, ProjectScope)
    assert (scope.scope_type, scope.id, scope.name) == (ScopeType.PROJECT, project.id, "vision")


def test_unknown_project_has_no_id(api):
    project = api.project("no-such-project", entity="acme")
    # herald answers `project: null` (or an error naming it); either way the SDK says which.
    with pytest.raises(ValueError, match="no-such-project"):
        project.id


def test_artifact_collection(api):
    collection = api.artifact_collection("model", "acme/vision/resnet")
    assert collection.name == "resnet"
    assert collection.type == "model"
    assert collection.entity == "acme"
    assert collection.project == "vision"
    assert collection.is_sequence()
    scope = parse_scope(collection)
    assert isinstance(scope, _ArtifactSequenceScope)
    assert (scope.scope_type, scope.id, scope.name) == (ScopeType.ARTIFACT_COLLECTION, collection.id, "resnet")
    assert scope.typename__ == "ArtifactSequence"


def test_registry(api, rest):
    registry = api.registry("model", organization="acme-org")
    assert registry.name == "model"
    assert registry.full_name == "wandb-registry-model"
    assert registry.entity == "acme-org"  # the organization's entity
    assert decode_global_id(registry.id) == (
        "Project", rest.get("/entities/acme-org/projects/wandb-registry-model")["id"]
    )
    scope = parse_scope(registry)
    assert isinstance(scope, RegistryScope)
    assert (scope.scope_type, scope.id, scope.name) == (ScopeType.PROJECT, registry.id, "wandb-registry-model")


def test_unknown_registry(api):
    with pytest.raises(ValueError, match="nope"):
        api.registry("nope", organization="acme-org")


def test_registries(api):
    assert [(r.name, r.full_name) for r in api.registries(organization="acme-org")] == [
        ("model", "wandb-registry-model")
    ]


def test_registry_collection_is_a_portfolio(api):
    collection = api.artifact_collection("model", "acme-org/wandb-registry-model/classifiers")
    assert collection.name == "classifiers"
    assert collection.type == "model"
    assert collection.project == "wandb-registry-model"
    assert not collection.is_sequence()
    scope = parse_scope(collection)
    assert isinstance(scope, _ArtifactPortfolioScope)
    assert scope.typename__ == "ArtifactPortfolio"
    assert (scope.scope_type, scope.name) == (ScopeType.ARTIFACT_COLLECTION, "classifiers")
    # Not the sequence it was linked from.
    assert scope.id != api.artifact_collection("model", "acme/vision/resnet").id


def test_another_teams_project_is_not_found(carol_api):
    project = carol_api.project("vision", entity="acme")
    with pytest.raises(ValueError, match="vision"):
        project.id
