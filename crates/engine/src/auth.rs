//! API keys: generated with 160 bits of randomness, shown to their owner once, stored as a
//! SHA-256 hash (a fast hash is right for random keys: there is nothing to brute-force).

use herald_domain::catalog::User;
use herald_domain::names::Username;
use herald_store::{NewUser, Store};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use crate::{Error, Result};

/// Length of a generated API key (W&B keys are 40 characters too).
pub const KEY_LEN: usize = 40;

/// A fresh random API key: 40 lowercase hex characters.
pub fn generate_key() -> String {
    let bytes: [u8; KEY_LEN / 2] = rand::thread_rng().gen();
    hex::encode(bytes)
}

/// What the store keeps of a key.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Finds the user a key belongs to.
pub async fn authenticate(store: &dyn Store, key: &str) -> Result<User> {
    if key.is_empty() {
        return Err(Error::Unauthenticated("empty API key".into()));
    }
    store
        .user_by_key_hash(&hash_key(key))
        .await?
        .ok_or_else(|| Error::Unauthenticated("invalid API key".into()))
}

/// How long a successful key lookup is trusted before the store is asked again.
const KEY_TTL: std::time::Duration = std::time::Duration::from_secs(30);
/// Most keys remembered; past it the least used are dropped first.
const KEY_CACHE_CAPACITY: u64 = 10_000;

/// The API's authentication service: finds the user an API key belongs to, remembering
/// recently seen keys for a short while, so a busy client costs one hash, not one database
/// read, per request. Only successful lookups are kept; keys cannot be revoked or users
/// changed in ways that matter here, and entries expire anyway. It is apart from the engine:
/// a server that only serves the API authenticates without running deliveries.
pub struct Authenticator {
    store: std::sync::Arc<dyn Store>,
    /// Users by key hash.
    known: moka::sync::Cache<String, User>,
}

impl Authenticator {
    pub fn new(store: std::sync::Arc<dyn Store>) -> Self {
        Self {
            store,
            known: moka::sync::Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .time_to_live(KEY_TTL)
                .build(),
        }
    }

    /// The user `key` belongs to (cached briefly).
    pub async fn authenticate(&self, key: &str) -> Result<User> {
        let hash = hash_key(key);
        if let Some(user) = self.known.get(&hash) {
            return Ok(user);
        }
        let user = authenticate(&*self.store, key).await?;
        self.known.insert(hash, user.clone());
        Ok(user)
    }
}

/// Creates a user with a new API key; returns the user and the key (the only time it is seen).
pub async fn create_user(
    store: &dyn Store,
    username: Username,
    email: Option<String>,
    is_admin: bool,
) -> Result<(User, String)> {
    let key = generate_key();
    let user = store
        .create_user(NewUser {
            username,
            email,
            is_admin,
            key_hash: hash_key(&key),
        })
        .await?;
    Ok((user, key))
}

/// Name of the server admin created on an empty store.
pub const BOOTSTRAP_ADMIN: &str = "admin";

/// On an empty store, creates the server admin `admin` with `key` (or a generated one) and
/// returns the key; on a store that has users, does nothing and returns `None`.
pub async fn bootstrap_admin(store: &dyn Store, key: Option<&str>) -> Result<Option<String>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let key = match key {
        Some(k) => {
            if k.len() < 16 {
                return Err(Error::Invalid(herald_domain::InvalidInput::new(
                    "HERALD_BOOTSTRAP_API_KEY",
                    "the bootstrap API key must be at least 16 characters",
                )));
            }
            k.to_string()
        }
        None => generate_key(),
    };
    let username = Username::parse(BOOTSTRAP_ADMIN).map_err(Error::Invalid)?;
    let created = store
        .create_user(NewUser {
            username,
            email: None,
            is_admin: true,
            key_hash: hash_key(&key),
        })
        .await;
    match created {
        Ok(_) => Ok(Some(key)),
        // Another replica starting at the same moment created it first.
        Err(herald_store::StoreError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hashed() {
        let (a, b) = (generate_key(), generate_key());
        assert_eq!(a.len(), KEY_LEN);
        assert_ne!(a, b);
        assert_eq!(hash_key(&a), hash_key(&a));
        assert_ne!(hash_key(&a), a);
        assert_eq!(
            hash_key("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn the_authenticator_finds_a_keys_user_and_refuses_other_keys() {
        // A file: each connection to `sqlite::memory:` would open a database of its own.
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        let store: std::sync::Arc<dyn Store> = std::sync::Arc::new(
            herald_store::sql::SqlStore::connect(&url, &Default::default())
                .await
                .unwrap(),
        );
        let name = Username::parse("ada").unwrap();
        let (user, key) = create_user(&*store, name, None, false).await.unwrap();
        let auth = Authenticator::new(store);
        for _ in 0..2 {
            // The second time from the cache: the same user.
            let found = auth.authenticate(&key).await.unwrap();
            assert_eq!((found.id, found.username), (user.id, user.username.clone()));
        }
        for bad in ["", "0123456789012345678901234567890123456789"] {
            let refused = auth.authenticate(bad).await.unwrap_err();
            assert!(
                matches!(refused, Error::Unauthenticated(_)),
                "{bad:?}: {refused}"
            );
        }
    }
}
