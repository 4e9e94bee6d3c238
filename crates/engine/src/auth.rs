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

/// Remembers recently seen keys for a short while, so a busy client costs one hash, not one
/// database read, per request. Only successful lookups are kept; keys cannot be revoked or
/// users changed in ways that matter here, and entries expire anyway.
#[derive(Default)]
pub struct KeyCache {
    entries: std::sync::Mutex<std::collections::HashMap<String, (User, std::time::Instant)>>,
}

impl KeyCache {
    const TTL: std::time::Duration = std::time::Duration::from_secs(30);
    const MAX: usize = 10_000;

    pub async fn authenticate(&self, store: &dyn Store, key: &str) -> Result<User> {
        let hash = hash_key(key);
        if let Some((user, at)) = self.entries.lock().expect("key cache lock").get(&hash) {
            if at.elapsed() < Self::TTL {
                return Ok(user.clone());
            }
        }
        let user = authenticate(store, key).await?;
        let mut entries = self.entries.lock().expect("key cache lock");
        if entries.len() >= Self::MAX {
            entries.clear();
        }
        entries.insert(hash, (user.clone(), std::time::Instant::now()));
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
}
