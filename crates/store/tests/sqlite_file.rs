//! The SQLite file herald creates: its page size, and a database from before it that keeps
//! its own page size and goes on working.

use herald_domain::names::Username;
use herald_store::sql::{SqlOptions, SqlStore, SQLITE_PAGE_SIZE};
use herald_store::{NewUser, UserStore};

fn page_size(path: &std::path::Path) -> u32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap()
}

/// Stores a user and reads it back by its key.
async fn user_round_trip(store: &SqlStore, name: &str) {
    let key_hash = format!("hash-of-{name}");
    let created = store
        .create_user(NewUser {
            username: Username::parse(name).unwrap(),
            email: None,
            is_admin: false,
            key_hash: key_hash.clone(),
        })
        .await
        .unwrap();
    let found = store.user_by_key_hash(&key_hash).await.unwrap().unwrap();
    assert_eq!(found.id, created.id);
}

#[tokio::test]
async fn a_new_database_gets_the_small_page_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url, &SqlOptions::default())
        .await
        .unwrap();
    user_round_trip(&store, "first").await;
    assert_eq!(page_size(&path), SQLITE_PAGE_SIZE);
}

#[tokio::test]
async fn a_database_with_the_default_page_size_keeps_it_and_works() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.db");
    // As earlier versions of herald created their databases: SQLite's default pages.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA page_size = 4096; PRAGMA journal_mode = WAL; VACUUM;")
        .unwrap();
    assert_eq!(page_size(&path), 4096);
    let url = format!("sqlite://{}", path.display());
    let store = SqlStore::connect(&url, &SqlOptions::default())
        .await
        .unwrap();
    user_round_trip(&store, "before").await;
    drop(store);
    let store = SqlStore::connect(&url, &SqlOptions::default())
        .await
        .unwrap();
    user_round_trip(&store, "after").await;
    assert_eq!(page_size(&path), 4096);
}
