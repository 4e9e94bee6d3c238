//! Blob keys: the names blobs are stored and signed under, checked once when made so that
//! nothing a client names can leave its prefix.
//!
//! | Key | What it holds |
//! |---|---|
//! | `md5/<owner id>/<32 hex>` | an artifact file of one owner (a team), by the MD5 of its bytes (stored once however many of the owner's artifacts hold it; never shared between owners, so knowing a hash grants nothing) |
//! | `runs/<run row id>/<name>` | a run's file (`output.log`, `media/images/x.png`, …) |
//! | `artifacts/<artifact row id>/<name>` | a file of one artifact version that is not content-addressed (its manifest) |
//!
//! A `<name>` is one or more `/`-separated segments; none may be empty, `.` or `..`, or hold a
//! control character (NUL included) or a backslash, and the whole key is at most
//! [`BlobKey::MAX_LEN`] bytes. Ids are positive decimal numbers without leading zeros, so one
//! thing has one key.

use std::fmt;

/// A checked blob key (see the module documentation for the scheme).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

/// Why a string is not a blob key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid blob key: {0}")]
pub struct InvalidKey(pub String);

fn invalid(message: impl Into<String>) -> InvalidKey {
    InvalidKey(message.into())
}

impl BlobKey {
    /// The longest key, in bytes (S3 allows 1024).
    pub const MAX_LEN: usize = 1024;

    /// The key of `owner`'s content whose MD5 is `md5`: `md5/<owner>/<hex>`.
    pub fn content(owner: i64, md5: &[u8; 16]) -> Self {
        Self(format!("md5/{owner}/{}", hex::encode(md5)))
    }

    /// The key of run `run`'s file `name`: `runs/<run>/<name>`.
    pub fn run_file(run: i64, name: &str) -> Result<Self, InvalidKey> {
        Self::scoped("runs", run, name)
    }

    /// The key of artifact version `artifact`'s file `name`: `artifacts/<artifact>/<name>`.
    pub fn artifact_file(artifact: i64, name: &str) -> Result<Self, InvalidKey> {
        Self::scoped("artifacts", artifact, name)
    }

    fn scoped(prefix: &str, id: i64, name: &str) -> Result<Self, InvalidKey> {
        if id <= 0 {
            return Err(invalid(format!(
                "{prefix}: the id must be positive, not {id}"
            )));
        }
        check_name(name)?;
        Self::checked_len(format!("{prefix}/{id}/{name}"))
    }

    fn checked_len(key: String) -> Result<Self, InvalidKey> {
        if key.len() > Self::MAX_LEN {
            return Err(invalid(format!(
                "a key is at most {} bytes; this one has {}",
                Self::MAX_LEN,
                key.len()
            )));
        }
        Ok(Self(key))
    }

    /// Reads a key as a URL's path names it (already percent-decoded).
    pub fn parse(s: &str) -> Result<Self, InvalidKey> {
        let (prefix, rest) = s.split_once('/').ok_or_else(|| {
            invalid("a key is `md5/<hex>`, `runs/<id>/<name>` or `artifacts/<id>/<name>`")
        })?;
        match prefix {
            "md5" => {
                let content = rest.split_once('/').and_then(|(owner, hex)| {
                    let owner = parse_id(owner)?;
                    Some(Self::content(owner, &parse_md5_hex(hex)?))
                });
                content.ok_or_else(|| {
                    invalid("`md5/` is followed by a positive owner id and 32 lowercase hex digits")
                })
            }
            "runs" | "artifacts" => {
                let (id, name) = rest.split_once('/').ok_or_else(|| {
                    invalid(format!("`{prefix}/<id>/` is followed by a file name"))
                })?;
                let id = parse_id(id)
                    .ok_or_else(|| invalid(format!("`{prefix}/` is followed by a positive id")))?;
                Self::scoped(prefix, id, name)
            }
            other => Err(invalid(format!(
                "unknown prefix `{}`: keys start with md5/, runs/ or artifacts/",
                other.escape_debug()
            ))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The MD5 a content-addressed key names: what its bytes must hash to.
    pub fn content_md5(&self) -> Option<[u8; 16]> {
        let (_, hex) = self.0.strip_prefix("md5/")?.split_once('/')?;
        parse_md5_hex(hex)
    }

    /// Where the blob lives in the object store. Content keys are spread over 256 folders by
    /// their first two hex digits (`md5/ab/ab…`), so no one directory of a local store holds
    /// millions of files; every segment is percent-encoded by `object_store` where a file system
    /// or S3 would read a character specially (`#`, `%`, `\`…).
    pub(crate) fn object_path(&self) -> object_store::path::Path {
        if let Some((owner, hex)) = self.0.strip_prefix("md5/").and_then(|r| r.split_once('/')) {
            return object_store::path::Path::from_iter(["md5", owner, &hex[..2], hex]);
        }
        object_store::path::Path::from_iter(self.0.split('/'))
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobKey({:?})", self.0)
    }
}

impl std::str::FromStr for BlobKey {
    type Err = InvalidKey;

    fn from_str(s: &str) -> Result<Self, InvalidKey> {
        Self::parse(s)
    }
}

/// 32 lowercase hex digits as 16 bytes (how keys and URLs write an MD5).
/// A positive decimal id without leading zeros (one thing, one key).
fn parse_id(s: &str) -> Option<i64> {
    let canonical = !s.starts_with('0') && !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    s.parse::<i64>().ok().filter(|id| canonical && *id > 0)
}

pub fn parse_md5_hex(s: &str) -> Option<[u8; 16]> {
    if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// Checks a client's file name: relative, no `.`/`..`/empty segments, no control characters
/// or backslashes.
fn check_name(name: &str) -> Result<(), InvalidKey> {
    if name.is_empty() {
        return Err(invalid("the file name is empty"));
    }
    if name.starts_with('/') {
        return Err(invalid(
            "a file name is relative; it may not start with `/`",
        ));
    }
    for segment in name.split('/') {
        match segment {
            "" => {
                return Err(invalid(
                    "a file name may not have an empty segment (`//` or a trailing `/`)",
                ))
            }
            "." | ".." => {
                return Err(invalid(format!(
                    "a file name may not have a `{segment}` segment"
                )))
            }
            _ => {}
        }
        if let Some(c) = segment.chars().find(|c| c.is_control() || *c == '\\') {
            return Err(invalid(format!(
                "a file name may not hold {:?}",
                c.escape_debug().to_string()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_made_and_read_back() {
        let md5 = [0xab; 16];
        let k = BlobKey::content(3, &md5);
        assert_eq!(k.as_str(), "md5/3/abababababababababababababababab");
        assert_eq!(k.content_md5(), Some(md5));
        assert_eq!(BlobKey::parse(k.as_str()).unwrap(), k);
        assert_eq!(
            k.object_path().as_ref(),
            "md5/3/ab/abababababababababababababababab"
        );
        assert_ne!(BlobKey::content(4, &md5), k, "owners never share content");

        let r = BlobKey::run_file(42, "media/images/x_0.png").unwrap();
        assert_eq!(r.as_str(), "runs/42/media/images/x_0.png");
        assert_eq!(r.content_md5(), None);
        assert_eq!(BlobKey::parse(r.as_str()).unwrap(), r);
        let a = BlobKey::artifact_file(7, "wandb_manifest.json").unwrap();
        assert_eq!(
            BlobKey::parse("artifacts/7/wandb_manifest.json").unwrap(),
            a
        );
        // Unicode and spaces are names like any other.
        assert!(BlobKey::run_file(1, "résumé final.txt").is_ok());
    }

    #[test]
    fn names_cannot_escape_their_prefix() {
        for name in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            ".",
            "a//b",
            "a/",
            "a\\..\\b",
            "nul\0byte",
            "line\nbreak",
            "tab\tname",
        ] {
            assert!(BlobKey::run_file(1, name).is_err(), "{name:?} accepted");
            assert!(
                BlobKey::parse(&format!("runs/1/{name}")).is_err(),
                "runs/1/{name:?} accepted"
            );
        }
        // A `..` inside a segment is only a name.
        assert!(BlobKey::run_file(1, "a..b/c...").is_ok());
    }

    #[test]
    fn malformed_keys_are_refused_with_a_reason() {
        for (key, reason) in [
            ("", "a key is"),
            ("md5", "a key is"),
            ("md5/1/ABABABABABABABABABABABABABABABAB", "lowercase hex"),
            ("md5/1/abab", "32"),
            ("md5/1/abababababababababababababababab/x", "32"),
            ("md5/abababababababababababababababab", "owner id"),
            ("md5/01/abababababababababababababababab", "owner id"),
            ("md5/0/abababababababababababababababab", "owner id"),
            ("runs/x/y", "positive id"),
            ("runs/0/y", "positive id"),
            ("runs/01/y", "positive id"),
            ("runs/-1/y", "positive id"),
            ("runs/99999999999999999999/y", "positive id"),
            ("runs/1", "file name"),
            ("blobs/1/x", "unknown prefix"),
            ("/runs/1/x", "unknown prefix"),
            ("../runs/1/x", "unknown prefix"),
        ] {
            let e = BlobKey::parse(key).unwrap_err().to_string();
            assert!(e.contains(reason), "{key:?}: {e}");
        }
        assert!(BlobKey::run_file(0, "x").is_err());
        let long = "x".repeat(BlobKey::MAX_LEN);
        let e = BlobKey::run_file(1, &long).unwrap_err().to_string();
        assert!(e.contains("1024"), "{e}");
    }

    #[test]
    fn characters_a_store_reads_specially_are_encoded_in_the_object_path() {
        // `#1` is how a local store names its unfinished uploads; `%` would be read as an escape.
        let k = BlobKey::run_file(3, "a#1/b%20c").unwrap();
        assert_eq!(k.object_path().as_ref(), "runs/3/a%231/b%2520c");
    }
}
