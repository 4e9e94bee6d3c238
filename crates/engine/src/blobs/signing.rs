//! Pre-signed storage URLs: `{public_url}/storage/v1/{key}?expires=<unix>[&md5=<hex>]&sig=<mac>`.
//!
//! `sig` is the unpadded base64url HMAC-SHA256, under a key derived from the master key
//! ([`MasterKey::derive`]`("blob-urls/v1")`), of
//!
//! ```text
//! herald-blob-url-v1 \n METHOD \n /storage/v1/<key> \n <expires> \n <md5 hex, or nothing>
//! ```
//!
//! so a URL grants one method (`PUT` to upload; `GET`, and so `HEAD`, to download) on one key
//! until one second, with the MD5 the upload must have if one was named. The key is signed as
//! checked and decoded, never as the client spelled it, so no encoding of the path gets past the
//! signature. Verification compares in constant time, and says whether a URL that verifies has
//! expired, or that one does not verify (a changed method, key, time or MD5, or another key).

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use herald_blobs::key::parse_md5_hex;
use herald_blobs::BlobKey;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;

use crate::secrets::MasterKey;

type HmacSha256 = Hmac<Sha256>;

/// The path every storage URL starts with (after the public URL's own path, if any).
pub const STORAGE_PATH: &str = "/storage/v1/";

/// What a URL grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `PUT`: store bytes under the key.
    Upload,
    /// `GET` or `HEAD`: read the key.
    Download,
}

impl Access {
    pub fn method(self) -> &'static str {
        match self {
            Self::Upload => "PUT",
            Self::Download => "GET",
        }
    }
}

/// The signature's parameters as a request carried them (`None` when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignedParams {
    pub expires: Option<String>,
    pub md5: Option<String>,
    pub sig: Option<String>,
}

impl SignedParams {
    /// Reads `expires`, `md5` and `sig` from a URL's query (percent-decoded); other parameters
    /// are ignored, a repeated one is refused by verification.
    pub fn from_query(query: &str) -> Self {
        let mut out = Self::default();
        let mut repeated = false;
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match &*k {
                "expires" => &mut out.expires,
                "md5" => &mut out.md5,
                "sig" => &mut out.sig,
                _ => continue,
            };
            repeated |= slot.is_some();
            *slot = Some(v.into_owned());
        }
        if repeated {
            // Which of two values was signed is not for the server to guess.
            out.sig = Some(String::new());
        }
        out
    }
}

/// What a verified URL allows beyond its method and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The MD5 an upload must have.
    pub md5: Option<[u8; 16]>,
    /// When the URL stops working (Unix seconds).
    pub expires: i64,
}

/// Why a URL grants nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error(
        "this URL is not signed: storage URLs carry `expires` and `sig`, as herald issues them"
    )]
    Unsigned,
    #[error("the URL's signature does not match this request ({0}): the method, the path or a parameter differs from what herald signed, or another server signed it")]
    BadSignature(&'static str),
    #[error("the URL expired at {expired_at} (Unix time; it is now {now}); ask for a new one")]
    Expired { expired_at: i64, now: i64 },
}

impl UrlError {
    /// A stable code for the error body: `unsigned`, `bad_signature` or `url_expired`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned => "unsigned",
            Self::BadSignature(_) => "bad_signature",
            Self::Expired { .. } => "url_expired",
        }
    }
}

/// Signs and verifies storage URLs under a key derived from the master key.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UrlSigner(***)")
    }
}

impl UrlSigner {
    pub fn new(master: &MasterKey) -> Self {
        Self {
            key: master.derive("blob-urls/v1"),
        }
    }

    fn mac(
        &self,
        access: Access,
        key: &BlobKey,
        expires: i64,
        md5: Option<&[u8; 16]>,
    ) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        let md5 = md5.map(hex::encode).unwrap_or_default();
        let message = format!(
            "herald-blob-url-v1\n{}\n{STORAGE_PATH}{key}\n{expires}\n{md5}",
            access.method()
        );
        mac.update(message.as_bytes());
        mac
    }

    /// The query string granting `access` to `key` until `expires`: `expires=…[&md5=…]&sig=…`.
    pub fn query(
        &self,
        access: Access,
        key: &BlobKey,
        expires: i64,
        md5: Option<&[u8; 16]>,
    ) -> String {
        let sig = B64URL.encode(self.mac(access, key, expires, md5).finalize().into_bytes());
        match md5 {
            Some(m) => format!("expires={expires}&md5={}&sig={sig}", hex::encode(m)),
            None => format!("expires={expires}&sig={sig}"),
        }
    }

    /// Whether `params` grant `access` to `key` at `now` (Unix seconds).
    pub fn verify(
        &self,
        access: Access,
        key: &BlobKey,
        params: &SignedParams,
        now: i64,
    ) -> Result<Grant, UrlError> {
        let (Some(expires), Some(sig)) = (&params.expires, &params.sig) else {
            return Err(UrlError::Unsigned);
        };
        let expires: i64 = expires
            .parse()
            .map_err(|_| UrlError::BadSignature("`expires` is not a Unix time"))?;
        let md5 = match &params.md5 {
            None => None,
            Some(m) => Some(parse_md5_hex(m).ok_or(UrlError::BadSignature(
                "`md5` is not 32 lowercase hex digits",
            ))?),
        };
        let sig = B64URL
            .decode(sig)
            .map_err(|_| UrlError::BadSignature("`sig` is not base64url"))?;
        self.mac(access, key, expires, md5.as_ref())
            .verify_slice(&sig)
            .map_err(|_| UrlError::BadSignature("it does not verify"))?;
        if now > expires {
            return Err(UrlError::Expired {
                expired_at: expires,
                now,
            });
        }
        Ok(Grant { md5, expires })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(query: &str) -> SignedParams {
        SignedParams::from_query(query)
    }

    #[test]
    fn a_signed_url_verifies_for_its_method_key_and_time_only() {
        let signer = UrlSigner::new(&MasterKey::generate());
        let key = BlobKey::run_file(1, "output.log").unwrap();
        let q = signer.query(Access::Upload, &key, 1000, None);
        assert!(q.starts_with("expires=1000&sig="), "{q}");
        let grant = signer
            .verify(Access::Upload, &key, &params(&q), 999)
            .unwrap();
        assert_eq!(
            grant,
            Grant {
                md5: None,
                expires: 1000
            }
        );
        assert!(
            signer
                .verify(Access::Upload, &key, &params(&q), 1000)
                .is_ok(),
            "valid through its second"
        );

        let bad = |access, key: &BlobKey, q: &str| {
            signer.verify(access, key, &params(q), 999).unwrap_err()
        };
        assert_eq!(
            bad(Access::Download, &key, &q).code(),
            "bad_signature",
            "another method"
        );
        let other = BlobKey::run_file(1, "output.log2").unwrap();
        assert_eq!(
            bad(Access::Upload, &other, &q).code(),
            "bad_signature",
            "another key"
        );
        let later = q.replace("expires=1000", "expires=9999");
        assert_eq!(
            bad(Access::Upload, &key, &later).code(),
            "bad_signature",
            "another time"
        );
        let other_server = UrlSigner::new(&MasterKey::generate());
        assert!(other_server
            .verify(Access::Upload, &key, &params(&q), 999)
            .is_err());
        let e = signer
            .verify(Access::Upload, &key, &params(&q), 1001)
            .unwrap_err();
        assert_eq!(
            e,
            UrlError::Expired {
                expired_at: 1000,
                now: 1001
            }
        );
        assert!(e.to_string().contains("expired"), "{e}");
        // An expired URL that was not ours says only that it does not verify.
        let e = other_server
            .verify(Access::Upload, &key, &params(&q), 5000)
            .unwrap_err();
        assert_eq!(e.code(), "bad_signature");
    }

    #[test]
    fn the_md5_an_upload_must_have_is_signed() {
        let signer = UrlSigner::new(&MasterKey::generate());
        let key = BlobKey::run_file(2, "f").unwrap();
        let md5 = [7u8; 16];
        let q = signer.query(Access::Upload, &key, 50, Some(&md5));
        let grant = signer.verify(Access::Upload, &key, &params(&q), 1).unwrap();
        assert_eq!(grant.md5, Some(md5));
        let dropped = q.replace(&format!("md5={}&", hex::encode(md5)), "");
        assert!(signer
            .verify(Access::Upload, &key, &params(&dropped), 1)
            .is_err());
        let changed = q.replace(&hex::encode(md5), &hex::encode([8u8; 16]));
        assert!(signer
            .verify(Access::Upload, &key, &params(&changed), 1)
            .is_err());
    }

    #[test]
    fn malformed_parameters_are_named() {
        let signer = UrlSigner::new(&MasterKey::generate());
        let key = BlobKey::run_file(3, "f").unwrap();
        let check = |q: &str| {
            signer
                .verify(Access::Download, &key, &params(q), 0)
                .unwrap_err()
        };
        assert_eq!(check(""), UrlError::Unsigned);
        assert_eq!(check("expires=5"), UrlError::Unsigned);
        assert_eq!(check("sig=abc"), UrlError::Unsigned);
        assert!(check("expires=soon&sig=abc")
            .to_string()
            .contains("expires"));
        assert!(check("expires=5&sig=***").to_string().contains("base64url"));
        assert!(check("expires=5&md5=XYZ&sig=abc")
            .to_string()
            .contains("md5"));
        // A parameter given twice is refused, even if one of its values was signed.
        let q = signer.query(Access::Download, &key, 10, None);
        assert!(signer
            .verify(Access::Download, &key, &params(&q), 0)
            .is_ok());
        let twice = format!("{q}&expires=10");
        assert_eq!(check(&twice).code(), "bad_signature");
    }
}
