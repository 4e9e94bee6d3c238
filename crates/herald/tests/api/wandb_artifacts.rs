//! Artifacts as the `wandb` SDK saves and edits them over GraphQL, with the real uploads to
//! signed URLs in between: the six-step save, digest dedupe, downloads of what was uploaded,
//! alias, tag and link edits with their events, and every way a save can be incomplete or
//! inconsistent, refused with the reason and leaving no version behind. The SDK itself drives
//! the same surface in `sdk-tests/test_artifacts.py`.

use base64::Engine as _;
use md5::{Digest as _, Md5};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::graphql::{data, gql};
use crate::helpers::*;

async fn error(api: &Api, query: &str, variables: Value) -> String {
    let (_, body) = gql(api, query, variables).await;
    body["errors"][0]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {body}"))
        .to_string()
}

const CREATE: &str = "mutation CreateArtifact($input: CreateArtifactInput!) { createArtifact(input: $input) { artifact { id state artifactSequence { latestArtifact { id } } } } }";
const MANIFEST: &str = "mutation CreateArtifactManifest($artifactID: ID!, $baseArtifactID: ID, $name: String!, $digest: String!, $entityName: String!, $projectName: String!, $runName: String!, $manifestType: ArtifactManifestType!, $includeUpload: Boolean!) {
  createArtifactManifest(input: {artifactID:$artifactID,baseArtifactID:$baseArtifactID,name:$name,digest:$digest,entityName:$entityName,projectName:$projectName,runName:$runName,type:$manifestType}) {
    artifactManifest { id file { id uploadUrl @include(if: $includeUpload) uploadHeaders @include(if: $includeUpload) } } } }";
const FILES: &str = "mutation CreateArtifactFiles($input: CreateArtifactFilesInput!) { createArtifactFiles(input: $input) { files { edges { node { storagePath uploadUrl uploadHeaders uploadMultipartUrls { uploadID uploadUrlParts { partNumber uploadUrl } } artifact { id } } } } } }";
const COMMIT: &str = "mutation CommitArtifact($artifactID: ID!) { commitArtifact(input: {artifactID: $artifactID}) { artifact { id digest } } }";
const BY_ID: &str = "query ArtifactByID($id: ID!) { artifact(id: $id) { __typename id state versionIndex size fileCount digest description metadata tags { name } aliases { alias artifactCollection { __typename name project { name entity { name } } } } artifactSequence { __typename name } currentManifest { file { directUrl } } } }";
const FILE_URLS: &str = "query GetArtifactMembershipFileUrls($entity: String!, $project: String!, $collection: String!, $alias: String!, $cursor: String, $perPage: Int) {
  project(name: $project, entityName: $entity) { artifactCollection(name: $collection) { __typename artifactMembership(aliasName: $alias) {
    files(after: $cursor, first: $perPage) { pageInfo { endCursor hasNextPage } edges { node { __typename name directUrl } } } } } } }";

fn b64_md5(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Md5::digest(bytes))
}

/// An artifact's files and the manifest the SDK would write for them.
struct Files {
    files: Vec<(&'static str, Vec<u8>)>,
}

impl Files {
    fn manifest(&self) -> Vec<u8> {
        let contents: serde_json::Map<String, Value> = self
            .files
            .iter()
            .map(|(name, bytes)| {
                (
                    name.to_string(),
                    json!({"digest": b64_md5(bytes), "size": bytes.len(), "local_path": "/tmp/x"}),
                )
            })
            .collect();
        json!({"version": 1, "storagePolicy": "wandb-storage-policy-v1",
               "storagePolicyConfig": {"storageLayout": "V2"}, "contents": contents})
        .to_string()
        .into_bytes()
    }

    /// W&B's artifact digest over the files.
    fn digest(&self) -> String {
        let mut lines: Vec<String> = self
            .files
            .iter()
            .map(|(n, b)| format!("{n}:{}\n", b64_md5(b)))
            .collect();
        lines.sort();
        let mut h = Md5::new();
        h.update(b"wandb-artifact-manifest-v1\n");
        for l in lines {
            h.update(l.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

fn create_input(digest: &str, aliases: &[&str]) -> Value {
    let aliases: Vec<Value> = aliases
        .iter()
        .map(|a| json!({"alias": a, "artifactCollectionName": "resnet"}))
        .collect();
    json!({"input": {
        "artifactTypeName": "model", "artifactCollectionName": "resnet", "artifactCollectionNames": null,
        "entityName": "acme", "projectName": "vision", "runName": "r1",
        "digest": digest, "digestAlgorithm": "MANIFEST_MD5", "aliases": aliases,
        "metadata": "{\"acc\":0.93}", "description": null, "clientID": "c".repeat(128),
        "sequenceClientID": "s".repeat(128), "enableDigestDeduplication": true, "historyStep": null,
        "distributedID": null, "labels": null, "storageRegion": null, "ttlDurationSeconds": null,
        "clientMutationId": null}})
}

fn manifest_vars(id: &str, digest: &str) -> Value {
    json!({"artifactID": id, "baseArtifactID": null, "name": "wandb_manifest.json", "digest": digest,
           "entityName": "acme", "projectName": "vision", "runName": "r1", "manifestType": "FULL",
           "includeUpload": !digest.is_empty()})
}

fn files_vars(id: &str, manifest_id: &str, files: &Files) -> Value {
    let specs: Vec<Value> = files
        .files
        .iter()
        .map(|(name, bytes)| json!({"artifactID": id, "artifactManifestID": manifest_id, "name": name,
            "md5": b64_md5(bytes), "digest": b64_md5(bytes), "mimetype": null, "uploadPartsInput": null}))
        .collect();
    json!({"input": {"storageLayout": "V2", "digestAlgorithm": "MANIFEST_MD5", "cloudRegionID": null,
                     "clientMutationId": null, "artifactFiles": specs}})
}

async fn put(url: &str, body: Vec<u8>) -> StatusCode {
    http_client()
        .put(url)
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
}

async fn get(url: &str) -> Vec<u8> {
    let res = http_client().get(url).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "GET {url}");
    res.bytes().await.unwrap().to_vec()
}

/// alice, ADMIN of team acme (in organization acme-org with registry `model`), with run r1 in
/// acme/vision.
async fn world(app: &TestApp) -> Api {
    let alice = acme_in_org(app).await;
    expect(
        alice
            .post(
                &format!("{}/runs", project("acme", "vision")),
                json!({"id": "r1"}),
            )
            .await,
        StatusCode::CREATED,
    );
    alice
}

/// Steps 1 to 3 of a save: the pending artifact's id, its manifest's id, and each file's
/// upload URL (None: stored already).
async fn begin(
    api: &Api,
    files: &Files,
    aliases: &[&str],
) -> (String, String, Vec<Option<String>>) {
    let d = data(api, CREATE, create_input(&files.digest(), aliases)).await;
    let art = &d["createArtifact"]["artifact"];
    assert_eq!(art["state"], "PENDING", "{d}");
    let id = art["id"].as_str().unwrap().to_string();
    let d = data(api, MANIFEST, manifest_vars(&id, "")).await;
    let manifest_id = d["createArtifactManifest"]["artifactManifest"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let d = data(api, FILES, files_vars(&id, &manifest_id, files)).await;
    let edges = d["createArtifactFiles"]["files"]["edges"]
        .as_array()
        .unwrap();
    assert_eq!(edges.len(), files.files.len());
    let urls = edges
        .iter()
        .map(|e| {
            assert_eq!(e["node"]["artifact"]["id"], id.as_str());
            e["node"]["uploadUrl"].as_str().map(str::to_string)
        })
        .collect();
    (id, manifest_id, urls)
}

/// Steps 4 to 6: the PUTs of the files that need one, the manifest, and the commit's answer.
async fn finish(
    api: &Api,
    id: &str,
    files: &Files,
    urls: &[Option<String>],
) -> (StatusCode, Value) {
    for ((_, bytes), url) in files.files.iter().zip(urls) {
        if let Some(url) = url {
            assert_eq!(put(url, bytes.clone()).await, StatusCode::OK);
        }
    }
    let manifest = files.manifest();
    let d = data(api, MANIFEST, manifest_vars(id, &b64_md5(&manifest))).await;
    let url = d["createArtifactManifest"]["artifactManifest"]["file"]["uploadUrl"]
        .as_str()
        .expect("an upload URL for the manifest")
        .to_string();
    assert_eq!(put(&url, manifest).await, StatusCode::OK);
    gql(api, COMMIT, json!({"artifactID": id})).await
}

async fn versions(api: &Api) -> Vec<Value> {
    let (status, body) = api
        .get(&format!(
            "{}/versions",
            collection("acme", "vision", "resnet")
        ))
        .await;
    if status == StatusCode::NOT_FOUND {
        return Vec::new();
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .or_else(|| body["versions"].as_array())
        .cloned()
        .unwrap_or_default()
}

#[tokio::test]
async fn an_artifact_saved_in_six_steps_reads_back_and_downloads_byte_for_byte() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let files = Files {
        files: vec![
            (
                "weights.bin",
                (0..5000u32).map(|i| (i % 251) as u8).collect(),
            ),
            ("config/model.json", b"{\"layers\": 50}".to_vec()),
        ],
    };
    let (id, _, urls) = begin(&alice, &files, &["candidate", "latest"]).await;
    assert!(urls.iter().all(Option::is_some), "nothing is stored yet");
    let (status, body) = finish(&alice, &id, &files, &urls).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    assert_eq!(
        body["data"]["commitArtifact"]["artifact"]["digest"],
        files.digest()
    );

    // The id CreateArtifact gave names the committed version.
    let art = data(&alice, BY_ID, json!({"id": id})).await["artifact"].clone();
    assert_eq!(art["__typename"], "Artifact");
    assert_eq!(art["state"], "COMMITTED", "{art}");
    assert_eq!(art["versionIndex"], 0);
    assert_eq!(art["fileCount"], 2);
    assert_eq!(art["size"], 5000 + 14);
    assert_eq!(art["artifactSequence"]["__typename"], "ArtifactSequence");
    let meta: Value = serde_json::from_str(art["metadata"].as_str().unwrap()).unwrap();
    assert_eq!(meta, json!({"acc": 0.93}));
    let mut aliases: Vec<&str> = art["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alias"].as_str().unwrap())
        .collect();
    aliases.sort();
    assert_eq!(aliases, ["candidate", "latest"]);
    let events = alice.events("acme").await;
    assert_eq!(of_type(&events, "CREATE_ARTIFACT").len(), 1, "{events:?}");
    assert_eq!(
        of_type(&events, "ADD_ARTIFACT_ALIAS").len(),
        1,
        "{events:?}"
    );

    // Downloads: the manifest, then each file, by the URLs the SDK is given.
    let manifest_url = art["currentManifest"]["file"]["directUrl"]
        .as_str()
        .unwrap();
    assert_eq!(get(manifest_url).await, files.manifest());
    let d = data(
        &alice,
        FILE_URLS,
        json!({"entity": "acme", "project": "vision", "collection": "resnet", "alias": "v0", "cursor": null, "perPage": 5000}),
    )
    .await;
    let edges = d["project"]["artifactCollection"]["artifactMembership"]["files"]["edges"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(edges.len(), 2);
    for e in edges {
        let name = e["node"]["name"].as_str().unwrap();
        let want = &files.files.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(
            &get(e["node"]["directUrl"].as_str().unwrap()).await,
            want,
            "{name}"
        );
    }

    // The same content again is the same version: nothing to upload, no new event.
    let d = data(
        &alice,
        CREATE,
        create_input(&files.digest(), &["again", "latest"]),
    )
    .await;
    let again = &d["createArtifact"]["artifact"];
    assert_eq!(again["state"], "COMMITTED");
    assert_eq!(again["id"], art["id"]);
    assert_eq!(versions(&alice).await.len(), 1);
    let events = alice.events("acme").await;
    assert_eq!(of_type(&events, "CREATE_ARTIFACT").len(), 1);
    assert_eq!(
        of_type(&events, "ADD_ARTIFACT_ALIAS").len(),
        2,
        "the new alias moved onto it"
    );

    // Changed content is the next version; files already stored need no upload.
    let mut changed = Files {
        files: files.files.clone(),
    };
    changed.files.push(("notes.txt", b"second".to_vec()));
    let (id2, _, urls) = begin(&alice, &changed, &["latest"]).await;
    assert_eq!(urls.iter().filter(|u| u.is_none()).count(), 2, "{urls:?}");
    let (status, body) = finish(&alice, &id2, &changed, &urls).await;
    assert!(
        status == StatusCode::OK && body.get("errors").is_none(),
        "{body}"
    );
    let v1 = data(&alice, BY_ID, json!({"id": id2})).await["artifact"].clone();
    assert_eq!(v1["versionIndex"], 1);
    let versions = versions(&alice).await;
    assert_eq!(versions.len(), 2);
}

#[tokio::test]
async fn an_incomplete_or_inconsistent_save_is_refused_and_leaves_no_version() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let files = Files {
        files: vec![
            ("weights.bin", b"0123456789".to_vec()),
            ("extra.bin", b"never uploaded".to_vec()),
        ],
    };

    // Committing before any manifest was announced.
    let (id, _, urls) = begin(&alice, &files, &["latest"]).await;
    let e = error(&alice, COMMIT, json!({"artifactID": id})).await;
    assert!(e.contains("no manifest was announced"), "{e}");

    // A manifest naming a file that was never uploaded.
    let manifest = files.manifest();
    let d = data(&alice, MANIFEST, manifest_vars(&id, &b64_md5(&manifest))).await;
    let murl = d["createArtifactManifest"]["artifactManifest"]["file"]["uploadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    // The manifest was announced but not uploaded yet.
    let e = error(&alice, COMMIT, json!({"artifactID": id})).await;
    assert!(e.contains("manifest was never uploaded"), "{e}");
    assert_eq!(put(&murl, manifest).await, StatusCode::OK);
    assert_eq!(
        put(urls[0].as_ref().unwrap(), files.files[0].1.clone()).await,
        StatusCode::OK
    );
    let e = error(&alice, COMMIT, json!({"artifactID": id})).await;
    assert!(e.contains("never uploaded: extra.bin"), "{e}");
    assert!(versions(&alice).await.is_empty());

    // A manifest whose files are not those the digest covers.
    let other = Files {
        files: vec![("weights.bin", b"0123456789".to_vec())],
    };
    let d = data(&alice, CREATE, create_input(&files.digest(), &[])).await;
    let id2 = d["createArtifact"]["artifact"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let manifest = other.manifest();
    let d = data(&alice, MANIFEST, manifest_vars(&id2, &b64_md5(&manifest))).await;
    let url = d["createArtifactManifest"]["artifactManifest"]["file"]["uploadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(put(&url, manifest).await, StatusCode::OK);
    let e = error(&alice, COMMIT, json!({"artifactID": id2})).await;
    assert!(
        e.contains("but the artifact was created with digest"),
        "{e}"
    );
    assert!(versions(&alice).await.is_empty());
    assert!(of_type(&alice.events("acme").await, "CREATE_ARTIFACT").is_empty());

    // Bad inputs name their field.
    let mut bad = create_input("", &[]);
    let e = error(&alice, CREATE, bad.clone()).await;
    assert!(e.contains("input.digest"), "{e}");
    bad["input"]["digest"] = json!("abc");
    bad["input"]["artifactCollectionName"] = json!("bad name!");
    let e = error(&alice, CREATE, bad.clone()).await;
    assert!(e.contains("input.artifactCollectionName"), "{e}");
    bad["input"]["artifactCollectionName"] = json!("resnet");
    bad["input"]["metadata"] = json!("[1,2]");
    let e = error(&alice, CREATE, bad.clone()).await;
    assert!(e.contains("input.metadata"), "{e}");
    bad["input"]["metadata"] = json!(null);
    bad["input"]["ttlDurationSeconds"] = json!(86400);
    let e = error(&alice, CREATE, bad.clone()).await;
    assert!(e.contains("input.ttlDurationSeconds"), "{e}");
    bad["input"]["ttlDurationSeconds"] = json!(null);
    bad["input"]["runName"] = json!("nope");
    let e = error(&alice, CREATE, bad).await;
    assert!(e.contains("run \"nope\" not found"), "{e}");
    let mut spec = files_vars(&id, "m", &files);
    spec["input"]["artifactFiles"][1]["md5"] = json!("not-md5");
    let e = error(&alice, FILES, spec).await;
    assert!(e.contains("input.artifactFiles[1].md5"), "{e}");
    let e = error(&alice, COMMIT, json!({"artifactID": "QXJ0aWZhY3Q6OTk5"})).await;
    assert!(e.contains("not found"), "{e}");

    // Another team's member cannot see the upload at all.
    let carol = app.create_user("carol").await;
    let e = error(&carol, COMMIT, json!({"artifactID": id})).await;
    assert!(e.contains("not found"), "{e}");
}

const ADD_ALIASES: &str = "mutation AddAliases($input: AddAliasesInput!) { result: addAliases(input: $input) { success } }";
const DELETE_ALIASES: &str = "mutation DeleteAliases($input: DeleteAliasesInput!) { result: deleteAliases(input: $input) { success } }";
const UPDATE: &str = "mutation UpdateArtifact($input: UpdateArtifactInput!) { result: updateArtifact(input: $input) { artifact { id description tags { name } aliases { alias } } } }";
const LINK: &str = "mutation LinkArtifact($input: LinkArtifactInput!) { result: linkArtifact(input: $input) { versionIndex artifactMembership { __typename id versionIndex aliases { alias } artifactCollection { __typename id name project { name entity { name } } } artifact { id } } } }";
const UNLINK: &str = "mutation UnlinkArtifact($input: UnlinkArtifactInput!) { result: unlinkArtifact(input: $input) { success } }";
const MEMBERSHIP: &str = "query ArtifactMembershipByName($entity: String!, $project: String!, $name: String!) { project(name: $project, entityName: $entity) { artifactCollectionMembership(name: $name) { __typename id versionIndex aliases { alias } artifactCollection { __typename name } artifact { id versionIndex } } } }";

#[tokio::test]
async fn aliases_tags_links_and_use_change_the_catalog_with_their_events() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let files = Files {
        files: vec![("w.bin", b"weights".to_vec())],
    };
    let (id, _, urls) = begin(&alice, &files, &["latest"]).await;
    let (status, body) = finish(&alice, &id, &files, &urls).await;
    assert!(
        status == StatusCode::OK && body.get("errors").is_none(),
        "{body}"
    );
    let m = data(
        &alice,
        MEMBERSHIP,
        json!({"entity": "acme", "project": "vision", "name": "resnet:latest"}),
    )
    .await;
    let m = &m["project"]["artifactCollectionMembership"];
    assert_eq!(m["artifactCollection"]["__typename"], "ArtifactSequence");
    let vid = m["artifact"]["id"].as_str().unwrap().to_string();
    let missing = data(
        &alice,
        MEMBERSHIP,
        json!({"entity": "acme", "project": "vision", "name": "resnet:v7"}),
    )
    .await;
    assert!(missing["project"]["artifactCollectionMembership"].is_null());

    let alias = |a: &str| json!({"input": {"artifactID": vid, "aliases": [{"alias": a, "entityName": "acme", "projectName": "vision", "artifactCollectionName": "resnet"}]}});
    assert_eq!(
        data(&alice, ADD_ALIASES, alias("staging")).await["result"]["success"],
        true
    );
    let e = error(&alice, ADD_ALIASES, alias("latest")).await;
    assert!(e.contains("latest"), "{e}");
    let d = data(&alice, UPDATE, json!({"input": {"artifactID": vid, "description": "resnet-50", "metadata": "{\"acc\":0.95}",
        "tagsToAdd": [{"tagName": "europe"}], "tagsToDelete": []}})).await;
    let art = &d["result"]["artifact"];
    assert_eq!(art["description"], "resnet-50");
    assert_eq!(art["tags"], json!([{"name": "europe"}]));
    data(&alice, UPDATE, json!({"input": {"artifactID": vid, "tagsToAdd": [], "tagsToDelete": [{"tagName": "europe"}]}})).await;
    assert_eq!(
        data(&alice, DELETE_ALIASES, alias("staging")).await["result"]["success"],
        true
    );
    let e = error(
        &alice,
        UPDATE,
        json!({"input": {"artifactID": vid, "ttlDurationSeconds": 3600}}),
    )
    .await;
    assert!(e.contains("input.ttlDurationSeconds"), "{e}");
    let e = error(
        &alice,
        UPDATE,
        json!({"input": {"artifactID": vid, "aliases": [{"alias": "x", "artifactCollectionName": "resnet"}]}}),
    )
    .await;
    assert!(
        e.contains("input.aliases") && e.contains("addAliases"),
        "{e}"
    );

    // Link into the organization's registry, twice: the second adds its alias to the link.
    let link = |aliases: Value| {
        json!({"input": {"artifactID": vid, "artifactPortfolioName": "classifiers",
        "entityName": "acme-org", "projectName": "wandb-registry-model", "aliases": aliases}})
    };
    let d = data(
        &alice,
        LINK,
        link(json!([{"alias": "production", "artifactCollectionName": "classifiers"}])),
    )
    .await;
    let mem = &d["result"]["artifactMembership"];
    assert_eq!(mem["artifactCollection"]["__typename"], "ArtifactPortfolio");
    assert_eq!(
        mem["artifactCollection"]["project"]["entity"]["name"],
        "acme-org"
    );
    assert_eq!(mem["versionIndex"], 0);
    assert_eq!(mem["artifact"]["id"], vid.as_str());
    let d = data(
        &alice,
        LINK,
        link(json!([{"alias": "eu", "artifactCollectionName": "classifiers"}])),
    )
    .await;
    let mut linked: Vec<&str> = d["result"]["artifactMembership"]["aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alias"].as_str().unwrap())
        .collect();
    linked.sort();
    assert_eq!(linked, ["eu", "latest", "production"]);
    let portfolio = d["result"]["artifactMembership"]["artifactCollection"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let e = error(
        &alice,
        LINK,
        json!({"input": {"artifactID": vid, "artifactPortfolioName": "c",
        "entityName": "acme", "projectName": "vision"}}),
    )
    .await;
    assert!(e.contains("not a registry"), "{e}");

    let use_doc = "mutation UseArtifact($entityName: String!, $projectName: String!, $runName: String!, $artifactID: ID!) {
        useArtifact(input: {entityName: $entityName, projectName: $projectName, runName: $runName, artifactID: $artifactID}) { artifact { id digest } } }";
    let d = data(&alice, use_doc, json!({"entityName": "acme", "projectName": "vision", "runName": "r1", "artifactID": vid, "usedAs": null})).await;
    assert_eq!(d["useArtifact"]["artifact"]["id"], vid.as_str());

    assert_eq!(
        data(
            &alice,
            UNLINK,
            json!({"input": {"artifactID": vid, "artifactPortfolioID": portfolio}})
        )
        .await["result"]["success"],
        true
    );
    let e = error(
        &alice,
        UNLINK,
        json!({"input": {"artifactID": vid, "artifactPortfolioID": portfolio}}),
    )
    .await;
    assert!(e.contains("not linked"), "{e}");

    let acme = types(&alice.events("acme").await);
    for t in [
        "CREATE_ARTIFACT",
        "ADD_ARTIFACT_ALIAS",
        "ADD_ARTIFACT_TAG",
        "REMOVE_ARTIFACT_TAG",
    ] {
        assert!(acme.iter().any(|x| x == t), "{t} in {acme:?}");
    }
    let org = types(&alice.events("acme-org").await);
    for t in ["LINK_MODEL", "ADD_ARTIFACT_ALIAS", "UNLINK_ARTIFACT"] {
        assert!(org.iter().any(|x| x == t), "{t} in {org:?}");
    }

    // bob, a VIEWER, may read but not change.
    let bob = app.create_user("bob").await;
    expect(
        alice
            .put(
                "/api/v1/entities/acme/members/bob",
                json!({"role": "VIEWER"}),
            )
            .await,
        StatusCode::OK,
    );
    assert_eq!(
        data(&bob, BY_ID, json!({"id": vid})).await["artifact"]["id"],
        vid.as_str()
    );
    let e = error(&bob, ADD_ALIASES, alias("bobs")).await;
    assert!(e.contains("MEMBER"), "{e}");
}

#[tokio::test]
async fn a_version_made_over_rest_reads_as_an_artifact_without_files() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let v = alice.create_version("acme", "vision", "resnet").await;
    let id = base64::engine::general_purpose::STANDARD.encode(format!("Artifact:{}", v["id"]));
    let art = data(&alice, BY_ID, json!({"id": id})).await["artifact"].clone();
    assert_eq!(
        (
            art["state"].as_str(),
            art["fileCount"].as_i64(),
            art["size"].as_i64()
        ),
        (Some("COMMITTED"), Some(0), Some(0)),
        "{art}"
    );
    let manifest: Value = serde_json::from_slice(
        &get(art["currentManifest"]["file"]["directUrl"]
            .as_str()
            .unwrap())
        .await,
    )
    .unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["contents"], json!({}));
    let d = data(
        &alice,
        FILE_URLS,
        json!({"entity": "acme", "project": "vision", "collection": "resnet", "alias": "v0", "cursor": null, "perPage": 5000}),
    )
    .await;
    assert_eq!(
        d["project"]["artifactCollection"]["artifactMembership"]["files"]["edges"],
        json!([])
    );
}

#[tokio::test]
async fn the_sweep_deletes_what_uncommitted_saves_left_and_keeps_what_versions_hold() {
    use herald_engine::artifact_save::{collect_garbage, Swept};
    use std::time::Duration;

    let app = spawn_app().await;
    let alice = world(&app).await;
    let kept = Files {
        files: vec![("w.bin", b"kept weights".to_vec())],
    };
    let (id, _, urls) = begin(&alice, &kept, &["latest"]).await;
    let (status, body) = finish(&alice, &id, &kept, &urls).await;
    assert!(
        status == StatusCode::OK && body.get("errors").is_none(),
        "{body}"
    );
    // A save that uploads a file and its manifest, then never commits.
    let lost = Files {
        files: vec![("w.bin", b"abandoned weights".to_vec())],
    };
    let (lost_id, _, urls) = begin(&alice, &lost, &["latest"]).await;
    assert_eq!(
        put(urls[0].as_ref().unwrap(), lost.files[0].1.clone()).await,
        StatusCode::OK
    );
    let team = app
        .store
        .entity_by_name("acme")
        .await
        .unwrap()
        .expect("acme")
        .id
        .0;
    let stored = |bytes: &[u8]| {
        let key = herald_blobs::BlobKey::content(team, &Md5::digest(bytes).into());
        let blobs = app.blobs.clone();
        async move { blobs.exists(&key).await.unwrap().is_some() }
    };
    assert!(stored(&lost.files[0].1).await);

    // Within the grace period nothing goes: a save may still be uploading.
    let swept = collect_garbage(&*app.store, &app.blobs, Duration::from_secs(3600))
        .await
        .unwrap();
    assert_eq!(swept, Swept::default());
    // Past it (the files were written a second or more ago), only what no version holds goes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let swept = collect_garbage(&*app.store, &app.blobs, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        swept,
        Swept {
            uploads: 1,
            blobs: 1
        }
    );
    assert!(!stored(&lost.files[0].1).await);
    assert!(
        stored(&kept.files[0].1).await,
        "a committed version's file stays"
    );
    assert!(stored(&kept.manifest()).await, "and its manifest");
    let e = error(&alice, COMMIT, json!({"artifactID": lost_id})).await;
    assert!(e.contains("not found"), "{e}");
    // What stays still downloads.
    let d = data(
        &alice,
        FILE_URLS,
        json!({"entity": "acme", "project": "vision", "collection": "resnet", "alias": "v0", "cursor": null, "perPage": 10}),
    )
    .await;
    let url = d["project"]["artifactCollection"]["artifactMembership"]["files"]["edges"][0]["node"]
        ["directUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(get(&url).await, kept.files[0].1);
}

#[tokio::test]
async fn knowing_another_teams_file_hash_grants_nothing() {
    let app = spawn_app().await;
    let alice = world(&app).await;
    let secret = Files {
        files: vec![("secret.bin", b"acme's private weights".to_vec())],
    };
    let (id, _, urls) = begin(&alice, &secret, &["latest"]).await;
    let (status, body) = finish(&alice, &id, &secret, &urls).await;
    assert!(
        status == StatusCode::OK && body.get("errors").is_none(),
        "{body}"
    );

    // carol, of another team, names the same content in an artifact of hers.
    let carol = app.create_user("carol").await;
    carol.create_team("other").await;
    carol.create_project("other", "sandbox").await;
    expect(
        carol
            .post(
                &format!("{}/runs", project("other", "sandbox")),
                json!({"id": "r1"}),
            )
            .await,
        StatusCode::CREATED,
    );
    let mut input = create_input(&secret.digest(), &[]);
    input["input"]["entityName"] = json!("other");
    input["input"]["projectName"] = json!("sandbox");
    let d = data(&carol, CREATE, input).await;
    let art = &d["createArtifact"]["artifact"];
    assert_eq!(
        art["state"], "PENDING",
        "another team's digest is not a dedupe: {d}"
    );
    let cid = art["id"].as_str().unwrap().to_string();
    let mut files = files_vars(&cid, "m", &secret);
    files["input"]["artifactFiles"][0]["artifactID"] = json!(cid);
    let d = data(&carol, FILES, files).await;
    assert!(
        d["createArtifactFiles"]["files"]["edges"][0]["node"]["uploadUrl"].is_string(),
        "the content is not hers: she must upload it: {d}"
    );
    // She uploads only the manifest, and commits: refused, the file is not hers.
    let manifest = secret.manifest();
    let mut vars = manifest_vars(&cid, &b64_md5(&manifest));
    vars["entityName"] = json!("other");
    vars["projectName"] = json!("sandbox");
    let d = data(&carol, MANIFEST, vars).await;
    let url = d["createArtifactManifest"]["artifactManifest"]["file"]["uploadUrl"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(put(&url, manifest).await, StatusCode::OK);
    let e = error(&carol, COMMIT, json!({"artifactID": cid})).await;
    assert!(e.contains("never uploaded: secret.bin"), "{e}");
}
