//! Artifacts as W&B's SDK saves them: the manifest it uploads (a JSON list of the artifact's
//! files with the base64 MD5 of each), the digest it computes from that list, and the names
//! (`resnet:v0`, `resnet:latest`) it asks for artifacts by. Committing an artifact checks the
//! manifest against the digest the SDK announced, so what herald stores is what the SDK meant.

use std::collections::BTreeMap;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use serde::Deserialize;

use crate::names::VersionRef;
use crate::InvalidInput;

/// The name of the manifest file within an artifact.
pub const MANIFEST_NAME: &str = "wandb_manifest.json";

/// The manifest of an artifact with no files (a version made over REST, which holds none).
pub const EMPTY_MANIFEST: &str = r#"{"version":1,"storagePolicy":"wandb-storage-policy-v1","storagePolicyConfig":{"storageLayout":"V2"},"contents":{}}"#;

/// Most entries one manifest may list.
pub const MAX_MANIFEST_ENTRIES: usize = 100_000;

/// A base64 MD5 (W&B's `digest` of a file) as its 16 bytes; `field` names it in the error.
pub fn parse_b64_md5(field: &str, s: &str) -> Result<[u8; 16], InvalidInput> {
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
        .ok_or_else(|| {
            InvalidInput::new(
                field,
                format!("{s:?} is not a base64 MD5 (22 characters and `==`)"),
            )
        })
}

/// The MD5 of `bytes`.
pub fn md5_of(bytes: &[u8]) -> [u8; 16] {
    Md5::digest(bytes).into()
}

/// 16 bytes of MD5 as W&B writes them: base64.
pub fn b64_md5(md5: &[u8; 16]) -> String {
    base64::engine::general_purpose::STANDARD.encode(md5)
}

/// One file a manifest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    pub path: String,
    /// The file's base64 MD5, as the manifest writes it.
    pub digest: String,
    /// The file's MD5; `None` for a reference (`ref`) entry, whose bytes live elsewhere.
    pub md5: Option<[u8; 16]>,
    pub size: u64,
}

/// A parsed `wandb_manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Sorted by path.
    pub entries: Vec<ManifestEntry>,
}

#[derive(Deserialize)]
struct RawManifest {
    version: i64,
    #[serde(default)]
    contents: BTreeMap<String, RawEntry>,
}

#[derive(Deserialize)]
struct RawEntry {
    digest: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default, rename = "ref")]
    reference: Option<String>,
}

impl Manifest {
    /// Reads a manifest as the SDK uploads it (version 1).
    pub fn parse(bytes: &[u8]) -> Result<Self, InvalidInput> {
        let raw: RawManifest = serde_json::from_slice(bytes).map_err(|e| {
            InvalidInput::new("manifest", format!("the manifest is not valid JSON: {e}"))
        })?;
        if raw.version != 1 {
            return Err(InvalidInput::new(
                "manifest",
                format!(
                    "manifest version {} is not supported; herald reads version 1",
                    raw.version
                ),
            ));
        }
        if raw.contents.len() > MAX_MANIFEST_ENTRIES {
            return Err(InvalidInput::new(
                "manifest",
                format!(
                    "the manifest lists {} files; at most {MAX_MANIFEST_ENTRIES}",
                    raw.contents.len()
                ),
            ));
        }
        let entries = raw
            .contents
            .into_iter()
            .map(|(path, e)| {
                let md5 = match e.reference {
                    Some(_) => None,
                    None => Some(parse_b64_md5(
                        &format!("manifest.contents[{path:?}].digest"),
                        &e.digest,
                    )?),
                };
                Ok(ManifestEntry {
                    path,
                    digest: e.digest,
                    md5,
                    size: e.size.unwrap_or(0),
                })
            })
            .collect::<Result<Vec<_>, InvalidInput>>()?;
        Ok(Self { entries })
    }

    /// W&B's digest of an artifact: the hex MD5 of a header line and one `path:digest` line
    /// per entry, in path order.
    pub fn digest(&self) -> String {
        let mut h = Md5::new();
        h.update(b"wandb-artifact-manifest-v1\n");
        for e in &self.entries {
            h.update(e.path.as_bytes());
            h.update(b":");
            h.update(e.digest.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// The total size of the files it lists.
    pub fn size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

/// Splits W&B's `collection:version` (`resnet:v0`, `resnet:latest`, `resnet:candidate`); a
/// bare collection name means `latest`.
pub fn parse_artifact_name(s: &str) -> Result<(String, VersionRef), InvalidInput> {
    let (collection, version) = s.rsplit_once(':').unwrap_or((s, crate::names::LATEST));
    if collection.is_empty() {
        return Err(InvalidInput::new(
            "name",
            format!("{s:?} is not an artifact name like `resnet:v0` or `resnet:latest`"),
        ));
    }
    let r = VersionRef::parse(version).map_err(|e| e.at("name"))?;
    Ok((collection.to_string(), r))
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEIGHTS: &str = r#"{"version":1,"storagePolicy":"wandb-storage-policy-v1","storagePolicyConfig":{"storageLayout":"V2"},"contents":{"weights.bin":{"digest":"7SwaaHDD+fOqn9lw1N3lqg==","size":130,"local_path":"/tmp/x","birthArtifactID":"QXJ0aWZhY3Q6MQ==","skip_cache":false}}}"#;

    #[test]
    fn reads_a_manifest_as_the_sdk_writes_it() {
        let m = Manifest::parse(WEIGHTS.as_bytes()).unwrap();
        assert_eq!(m.entries.len(), 1);
        assert_eq!(m.entries[0].path, "weights.bin");
        assert_eq!(m.entries[0].size, 130);
        assert_eq!(
            b64_md5(&m.entries[0].md5.unwrap()),
            "7SwaaHDD+fOqn9lw1N3lqg=="
        );
        assert_eq!(m.size(), 130);
    }

    #[test]
    fn the_digest_is_wandbs() {
        // md5("wandb-artifact-manifest-v1\nweights.bin:7SwaaHDD+fOqn9lw1N3lqg==\n")
        let m = Manifest::parse(WEIGHTS.as_bytes()).unwrap();
        let mut h = Md5::new();
        h.update(b"wandb-artifact-manifest-v1\nweights.bin:7SwaaHDD+fOqn9lw1N3lqg==\n");
        assert_eq!(m.digest(), hex::encode(h.finalize()));
        // Entries are hashed in path order whatever order the JSON has them in.
        let a = Manifest::parse(br#"{"version":1,"contents":{"b":{"digest":"AAAAAAAAAAAAAAAAAAAAAA==","size":1},"a":{"digest":"AQEBAQEBAQEBAQEBAQEBAQ==","size":2}}}"#).unwrap();
        let b = Manifest::parse(br#"{"version":1,"contents":{"a":{"digest":"AQEBAQEBAQEBAQEBAQEBAQ==","size":2},"b":{"digest":"AAAAAAAAAAAAAAAAAAAAAA==","size":1}}}"#).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.entries[0].path, "a");
    }

    #[test]
    fn bad_manifests_are_named() {
        for (body, needle) in [
            (&b"not json"[..], "not valid JSON"),
            (br#"{"version":2,"contents":{}}"#, "version 2"),
            (
                br#"{"version":1,"contents":{"a":{"digest":"xyz","size":1}}}"#,
                "base64 MD5",
            ),
            (br#"{"contents":{}}"#, "not valid JSON"),
        ] {
            let e = Manifest::parse(body).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        // A reference entry names bytes stored elsewhere: no MD5 of ours to check.
        let m = Manifest::parse(
            br#"{"version":1,"contents":{"s3":{"digest":"etag-1","ref":"s3://b/k","size":5}}}"#,
        )
        .unwrap();
        assert_eq!(m.entries[0].md5, None);
    }

    #[test]
    fn the_empty_manifest_reads_as_no_files() {
        assert!(Manifest::parse(EMPTY_MANIFEST.as_bytes())
            .unwrap()
            .entries
            .is_empty());
    }

    #[test]
    fn artifact_names() {
        let (c, r) = parse_artifact_name("resnet:v3").unwrap();
        assert_eq!((c.as_str(), r), ("resnet", VersionRef::Index(3)));
        let (c, r) = parse_artifact_name("resnet").unwrap();
        assert_eq!((c.as_str(), r.to_string().as_str()), ("resnet", "latest"));
        assert_eq!(
            parse_artifact_name("resnet:candidate")
                .unwrap()
                .1
                .to_string(),
            "candidate"
        );
        assert!(parse_artifact_name(":v0").is_err());
        assert!(parse_artifact_name("resnet:").is_err());
        assert!(parse_b64_md5("f", "AAAA").is_err());
    }
}
