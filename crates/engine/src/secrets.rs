//! Team secrets at rest: sealed with XChaCha20-Poly1305 under the server's master key, with the
//! owning entity and the secret's name as associated data, so a sealed value copied to another
//! row or team does not open. Values are only ever opened for a delivery.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use herald_domain::ids::EntityId;
use rand::RngCore as _;

/// The 32-byte master key. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the master key must be 32 bytes, given as 64 hex characters or base64 (got {0} bytes)"
    )]
    Length(usize),
    #[error("the master key is neither hex nor base64")]
    Encoding,
}

impl MasterKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut k);
        Self(k)
    }

    /// Parses 64 hex characters or base64 of 32 bytes.
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let s = s.trim();
        let bytes = if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(s).map_err(|_| KeyError::Encoding)?
        } else {
            B64.decode(s).map_err(|_| KeyError::Encoding)?
        };
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(bytes.len()))?;
        Ok(Self(arr))
    }

    /// The key as base64, for writing the key file.
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    /// A 32-byte key for one `purpose` (such as signing blob URLs), derived from the master
    /// key as HMAC-SHA256(master key, `"herald-subkey:" ‖ purpose`): each use gets a key of its
    /// own, none can be turned back into the master key, and the sealing key is used for
    /// nothing else.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.0)
            .expect("HMAC accepts keys of any length");
        mac.update(b"herald-subkey:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }

    /// Seals `value` for secret `name` of `entity`: base64 of nonce ‖ ciphertext.
    pub fn seal(&self, entity: EntityId, name: &str, value: &str) -> String {
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let aad = aad(entity, name);
        let ct = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory buffers");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        B64.encode(out)
    }

    /// Opens a sealed value; `None` if it was sealed under another key, entity or name.
    pub fn open(&self, entity: EntityId, name: &str, sealed: &str) -> Option<String> {
        let raw = B64.decode(sealed).ok()?;
        if raw.len() < 24 {
            return None;
        }
        let (nonce, ct) = raw.split_at(24);
        let aad = aad(entity, name);
        let pt = self
            .cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .ok()?;
        String::from_utf8(pt).ok()
    }
}

fn aad(entity: EntityId, name: &str) -> Vec<u8> {
    format!("herald-secret:{}:{name}", entity.0).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_and_open() {
        let k = MasterKey::generate();
        let sealed = k.seal(EntityId(1), "TOKEN", "s3cr3t-value");
        assert!(!sealed.contains("s3cr3t"));
        assert_eq!(
            k.open(EntityId(1), "TOKEN", &sealed).as_deref(),
            Some("s3cr3t-value")
        );
        assert_ne!(
            sealed,
            k.seal(EntityId(1), "TOKEN", "s3cr3t-value"),
            "fresh nonce each time"
        );
        assert_eq!(
            k.open(EntityId(2), "TOKEN", &sealed),
            None,
            "bound to its entity"
        );
        assert_eq!(
            k.open(EntityId(1), "OTHER", &sealed),
            None,
            "bound to its name"
        );
        assert_eq!(
            MasterKey::generate().open(EntityId(1), "TOKEN", &sealed),
            None,
            "bound to its key"
        );
        assert_eq!(k.open(EntityId(1), "TOKEN", "!!"), None);
    }

    #[test]
    fn key_parsing() {
        let k = MasterKey::generate();
        let again = MasterKey::parse(&k.to_base64()).unwrap();
        assert_eq!(again.0, k.0);
        assert_eq!(MasterKey::parse(&hex::encode(k.0)).unwrap().0, k.0);
        assert!(matches!(
            MasterKey::parse("c2hvcnQ="),
            Err(KeyError::Length(5))
        ));
        assert!(MasterKey::parse("not a key!").is_err());
        assert_eq!(format!("{k:?}"), "MasterKey(***)");
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_from_the_master_key() {
        let k = MasterKey::generate();
        let a = k.derive("blob-urls");
        assert_eq!(a, k.derive("blob-urls"), "deterministic");
        assert_ne!(a, k.derive("other"));
        assert_ne!(a, k.0);
        assert_ne!(a, MasterKey::generate().derive("blob-urls"));
    }
}
