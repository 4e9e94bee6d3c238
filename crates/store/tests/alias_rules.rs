//! Property test: the SQL store keeps W&B's alias and version rules. Random sequences of
//! catalog operations run against a real SQLite database and against a naive in-memory model
//! of the rules; after every step both must show the same versions and aliases.
//!
//! Rules checked: indexes are v0, v1, … per collection and never reused; an alias is on at most
//! one version of a collection and moves when added elsewhere; `latest` is on the newest
//! membership; linking gives the portfolio's next index and refuses a second link of the same
//! version; unlinking keeps the version and moves `latest` back.

use std::collections::BTreeMap;

use herald_domain::catalog::{EntityKind, Project, User};
use herald_domain::names::{
    AliasName, ArtifactType, CollectionName, EntityName, ProjectName, RegistryName, Username,
    VersionRef,
};
use herald_store::sql::SqlStore;
use herald_store::{ArtifactStore, EntityStore, NewUser, NewVersion, Store, StoreError, UserStore};
use proptest::prelude::*;

mod common;

#[derive(Debug, Clone)]
enum Op {
    Create {
        coll: usize,
        aliases: Vec<usize>,
    },
    AddAlias {
        coll: usize,
        pick: usize,
        alias: usize,
    },
    RemoveAlias {
        coll: usize,
        pick: usize,
        alias: usize,
    },
    Link {
        coll: usize,
        pick: usize,
        alias: Option<usize>,
    },
    Unlink {
        pick: usize,
    },
}

const ALIASES: [&str; 3] = ["prod", "staging", "best"];
const COLLS: [&str; 2] = ["model-a", "model-b"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, proptest::collection::vec(0..3usize, 0..2)).prop_map(|(coll, aliases)| Op::Create { coll, aliases }),
        3 => (0..2usize, any::<usize>(), 0..3usize).prop_map(|(coll, pick, alias)| Op::AddAlias { coll, pick, alias }),
        2 => (0..2usize, any::<usize>(), 0..3usize).prop_map(|(coll, pick, alias)| Op::RemoveAlias { coll, pick, alias }),
        2 => (0..2usize, any::<usize>(), proptest::option::of(0..3usize)).prop_map(|(coll, pick, alias)| Op::Link { coll, pick, alias }),
        1 => any::<usize>().prop_map(|pick| Op::Unlink { pick }),
    ]
}

/// The model of one collection: memberships (index → version key) and aliases (alias → index).
#[derive(Default, Debug, Clone)]
struct Coll {
    next: i64,
    members: BTreeMap<i64, (usize, i64)>, // index -> (home collection, home index)
    aliases: BTreeMap<String, i64>,
}

impl Coll {
    fn add(&mut self, version: (usize, i64)) -> i64 {
        let i = self.next;
        self.next += 1;
        self.members.insert(i, version);
        i
    }

    fn pick(&self, n: usize) -> Option<i64> {
        let keys: Vec<i64> = self.members.keys().copied().collect();
        (!keys.is_empty()).then(|| keys[n % keys.len()])
    }

    /// Expected (index, sorted aliases including latest) per membership.
    fn view(&self) -> Vec<(i64, Vec<String>)> {
        let latest = self.members.keys().max().copied();
        self.members
            .keys()
            .map(|i| {
                let mut a: Vec<String> = self
                    .aliases
                    .iter()
                    .filter(|(_, v)| *v == i)
                    .map(|(k, _)| k.clone())
                    .collect();
                if Some(*i) == latest {
                    a.push("latest".into());
                }
                a.sort();
                (*i, a)
            })
            .collect()
    }
}

struct World {
    store: SqlStore,
    user: User,
    project: Project,
    registry: Project,
    _db: common::TestDb,
}

async fn world(db: common::TestDb) -> World {
    let store = db.store.clone();
    let user = store
        .create_user(NewUser {
            username: Username::parse("u").unwrap(),
            email: None,
            is_admin: false,
            key_hash: "h".into(),
        })
        .await
        .unwrap();
    let org = store
        .create_entity(
            &EntityName::parse("org").unwrap(),
            EntityKind::Organization,
            None,
            &user,
        )
        .await
        .unwrap();
    let project = store
        .create_project(&org, &ProjectName::parse("p").unwrap(), None)
        .await
        .unwrap();
    let registry = store
        .create_project(
            &org,
            &ProjectName::for_registry(&RegistryName::parse("model").unwrap()),
            None,
        )
        .await
        .unwrap();
    World {
        store,
        user,
        project,
        registry,
        _db: db,
    }
}

async fn observed(store: &SqlStore, project: &Project, coll: &str) -> Vec<(i64, Vec<String>)> {
    match store.list_versions(project, coll).await {
        Ok(vs) => vs
            .into_iter()
            .map(|v| (v.version_index, v.aliases))
            .collect(),
        Err(StoreError::NotFound(_)) => vec![],
        Err(e) => panic!("list_versions: {e}"),
    }
}

async fn check(ops: Vec<Op>) {
    // The same operations on every backend must leave the same, rule-abiding state.
    for db in common::databases().await {
        check_on(db, ops.clone()).await;
    }
}

async fn check_on(db: common::TestDb, ops: Vec<Op>) {
    let backend = db.name;
    let w = world(db).await;
    let mut colls = [Coll::default(), Coll::default()];
    let mut portfolio = Coll::default();
    let portfolio_name = CollectionName::parse("registered").unwrap();
    for op in ops {
        match op {
            Op::Create { coll, aliases } => {
                let names: Vec<AliasName> = aliases
                    .iter()
                    .map(|a| AliasName::parse(ALIASES[*a]).unwrap())
                    .collect();
                let new = NewVersion {
                    collection: CollectionName::parse(COLLS[coll]).unwrap(),
                    artifact_type: ArtifactType::parse("model").unwrap(),
                    digest: None,
                    description: None,
                    metadata: serde_json::json!({}),
                    aliases: names,
                    tags: vec![],
                    run: None,
                };
                let v = w
                    .store
                    .create_version(&w.project, &w.user, new)
                    .await
                    .unwrap();
                let home = colls[coll].next;
                let i = colls[coll].add((coll, home));
                assert_eq!(v.version_index, i, "indexes are dense per collection");
                for a in aliases {
                    colls[coll].aliases.insert(ALIASES[a].to_string(), i);
                }
            }
            Op::AddAlias { coll, pick, alias } => {
                let Some(i) = colls[coll].pick(pick) else {
                    continue;
                };
                let a = AliasName::parse(ALIASES[alias]).unwrap();
                w.store
                    .add_alias(&w.project, &w.user, COLLS[coll], &VersionRef::Index(i), &a)
                    .await
                    .unwrap();
                colls[coll].aliases.insert(ALIASES[alias].to_string(), i);
            }
            Op::RemoveAlias { coll, pick, alias } => {
                let Some(i) = colls[coll].pick(pick) else {
                    continue;
                };
                let a = AliasName::parse(ALIASES[alias]).unwrap();
                let r = w
                    .store
                    .remove_alias(&w.project, &w.user, COLLS[coll], &VersionRef::Index(i), &a)
                    .await;
                if colls[coll].aliases.get(ALIASES[alias]) == Some(&i) {
                    r.unwrap();
                    colls[coll].aliases.remove(ALIASES[alias]);
                } else {
                    assert!(
                        matches!(r, Err(StoreError::NotFound(_))),
                        "removing an alias a version lacks: {r:?}"
                    );
                }
            }
            Op::Link { coll, pick, alias } => {
                let Some(i) = colls[coll].pick(pick) else {
                    continue;
                };
                let aliases: Vec<AliasName> = alias
                    .iter()
                    .map(|a| AliasName::parse(ALIASES[*a]).unwrap())
                    .collect();
                let r = w
                    .store
                    .link_version(
                        &w.project,
                        &w.user,
                        COLLS[coll],
                        &VersionRef::Index(i),
                        &w.registry,
                        &portfolio_name,
                        &aliases,
                    )
                    .await;
                if portfolio.members.values().any(|v| *v == (coll, i)) {
                    assert!(
                        matches!(r, Err(StoreError::Conflict(_))),
                        "second link must conflict: {r:?}"
                    );
                } else {
                    let v = r.unwrap();
                    let j = portfolio.add((coll, i));
                    assert_eq!(v.version_index, j);
                    assert_eq!(v.source.version, format!("v{i}"));
                    if let Some(a) = alias {
                        portfolio.aliases.insert(ALIASES[a].to_string(), j);
                    }
                }
            }
            Op::Unlink { pick } => {
                let Some(j) = portfolio.pick(pick) else {
                    continue;
                };
                w.store
                    .unlink_version(&w.registry, &w.user, "registered", &VersionRef::Index(j))
                    .await
                    .unwrap();
                portfolio.members.remove(&j);
                portfolio.aliases.retain(|_, v| *v != j);
            }
        }
        for (c, model) in colls.iter().enumerate() {
            assert_eq!(
                observed(&w.store, &w.project, COLLS[c]).await,
                model.view(),
                "collection {} on {backend}",
                COLLS[c]
            );
        }
        assert_eq!(
            observed(&w.store, &w.registry, "registered").await,
            portfolio.view(),
            "registry collection on {backend}"
        );
    }
    w.store.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn store_keeps_alias_and_version_rules(ops in proptest::collection::vec(op(), 1..24)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(check(ops));
    }
}
