//! `[storage.blobs]`: where files are kept, how large they may be, and how long the URLs to
//! them work. Sizes are written as bytes (`1048576`) or with a unit (`5GiB`, `500 MB`,
//! `100MiB`; `KB`/`MB`/`GB`/`TB` are powers of 1000, `KiB`/`MiB`/`GiB`/`TiB` of 1024).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use herald_blobs::{Limits, Location};
use herald_engine::blobs::UrlLifetimes;
use serde::de::{self, Deserializer, Unexpected};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlobSettings {
    /// Empty: `<data_dir>/blobs`. A directory, `file:///dir`, or `s3://bucket/prefix`.
    pub url: String,
    pub max_file_size: ByteSize,
    /// `unlimited`, or a size.
    pub max_total_size: TotalSize,
    #[serde(with = "humantime_serde")]
    pub upload_url_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub download_url_ttl: Duration,
}

impl BlobSettings {
    /// Where the store lives, for a server whose data directory is `data_dir`.
    pub fn location(&self, data_dir: &Path) -> anyhow::Result<Location> {
        Location::parse(&self.url, data_dir)
            .map_err(|e| anyhow::anyhow!("invalid configuration: storage.blobs.url: {e}"))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_file_size: self.max_file_size.0,
            max_total_size: self.max_total_size.0,
        }
    }

    pub fn lifetimes(&self) -> UrlLifetimes {
        UrlLifetimes {
            upload: self.upload_url_ttl,
            download: self.download_url_ttl,
        }
    }

    pub(super) fn validate(&self, data_dir: &Path) -> anyhow::Result<()> {
        let location = self.location(data_dir)?;
        if self.max_file_size.0 == 0 {
            bail!("invalid configuration: storage.blobs.max_file_size must be at least 1 byte");
        }
        if matches!(location, Location::S3 { .. }) && self.max_total_size.0.is_some() {
            bail!("invalid configuration: storage.blobs.max_total_size limits a local blob store only; with a bucket, leave it `unlimited` and set a quota on the bucket");
        }
        for (key, d) in [
            ("upload_url_ttl", self.upload_url_ttl),
            ("download_url_ttl", self.download_url_ttl),
        ] {
            if d < Duration::from_secs(1) {
                bail!("invalid configuration: storage.blobs.{key} must be at least 1s");
            }
        }
        Ok(())
    }
}

/// A number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

/// A total size, or no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotalSize(pub Option<u64>);

const EXPECTED: &str = "a size such as 5GiB, 500MB or 1048576";

impl ByteSize {
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, unit) = s.split_at(split);
        let unit: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kb" => 1000,
            "mb" => 1000_u64.pow(2),
            "gb" => 1000_u64.pow(3),
            "tb" => 1000_u64.pow(4),
            "kib" => 1 << 10,
            "mib" => 1 << 20,
            "gib" => 1 << 30,
            "tib" => 1 << 40,
            _ => return None,
        };
        if let Ok(n) = number.parse::<u64>() {
            return n.checked_mul(unit).map(Self);
        }
        // A fraction, as in 1.5GiB: whole bytes, and not past u64.
        let f: f64 = number.parse().ok()?;
        let bytes = (f * unit as f64).round();
        (f.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(Self(bytes as u64))
    }
}

/// A TOML integer, or a string (from a file or an environment variable).
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(u64),
    Text(String),
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(n)),
            Raw::Text(s) => Self::parse(&s)
                .ok_or_else(|| de::Error::invalid_value(Unexpected::Str(&s), &EXPECTED)),
        }
    }
}

impl<'de> Deserialize<'de> for TotalSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Self(Some(n))),
            Raw::Text(s) if s.trim().eq_ignore_ascii_case("unlimited") => Ok(Self(None)),
            Raw::Text(s) => ByteSize::parse(&s).map(|b| Self(Some(b.0))).ok_or_else(|| {
                de::Error::invalid_value(
                    Unexpected::Str(&s),
                    &"`unlimited` or a size such as 100GiB",
                )
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Overrides};

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn sizes_are_read_with_their_units() {
        let p = |s: &str| ByteSize::parse(s).map(|b| b.0);
        assert_eq!(p("1048576"), Some(1 << 20));
        assert_eq!(p("5GiB"), Some(5 << 30));
        assert_eq!(p("5 gib"), Some(5 << 30));
        assert_eq!(p("500MB"), Some(500_000_000));
        assert_eq!(p("1.5KiB"), Some(1536));
        assert_eq!(p("7b"), Some(7));
        for bad in [
            "",
            "GiB",
            "5 parsecs",
            "-1",
            "1e3",
            "99999999999TiB",
            "1.2.3MB",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn defaults_keep_files_in_the_data_directory() {
        let c = Config::load_from(&Overrides::default(), no_env).unwrap();
        let b = &c.storage.blobs;
        assert_eq!(
            b.location(&c.data_dir).unwrap(),
            Location::Local(c.data_dir.join("blobs"))
        );
        assert_eq!(b.limits(), Limits::default());
        assert_eq!(b.limits().max_total_size, None, "no total limit unless set");
        assert_eq!(b.lifetimes(), UrlLifetimes::default());
    }

    #[test]
    fn settings_come_from_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("herald.toml");
        std::fs::write(
            &file,
            "[storage.blobs]\nmax_file_size = 1000\nmax_total_size = \"2 GiB\"\ndownload_url_ttl = \"10m\"\n",
        )
        .unwrap();
        let env = |k: &str| match k {
            "HERALD_BLOBS_MAX_FILE_SIZE" => Some("64MiB".to_string()),
            "HERALD_BLOBS_UPLOAD_URL_TTL" => Some("2h".to_string()),
            _ => None,
        };
        let o = Overrides {
            config_file: Some(file),
            ..Default::default()
        };
        let b = Config::load_from(&o, env).unwrap().storage.blobs;
        assert_eq!(b.limits().max_file_size, 64 << 20, "environment beats file");
        assert_eq!(b.limits().max_total_size, Some(2 << 30));
        assert_eq!(b.lifetimes().upload, Duration::from_secs(7200));
        assert_eq!(b.lifetimes().download, Duration::from_secs(600));

        let env = |k: &str| (k == "HERALD_BLOBS_URL").then(|| "s3://ml-blobs/herald".to_string());
        let c = Config::load_from(&Overrides::default(), env).unwrap();
        assert_eq!(
            c.storage.blobs.location(&c.data_dir).unwrap(),
            Location::S3 {
                bucket: "ml-blobs".into(),
                prefix: "herald".into()
            }
        );
    }

    #[test]
    fn bad_blob_settings_are_named() {
        let bad = |pairs: &'static [(&'static str, &'static str)]| {
            let env = move |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| *name == k)
                    .map(|(_, v)| v.to_string())
            };
            Config::load_from(&Overrides::default(), env)
                .unwrap_err()
                .to_string()
        };
        let e = bad(&[("HERALD_BLOBS_MAX_FILE_SIZE", "huge")]);
        for part in [
            "storage.blobs.max_file_size",
            "HERALD_BLOBS_MAX_FILE_SIZE",
            "\"huge\"",
            "5GiB",
        ] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let e = bad(&[("HERALD_BLOBS_MAX_TOTAL_SIZE", "lots")]);
        assert!(
            e.contains("storage.blobs.max_total_size") && e.contains("unlimited"),
            "{e}"
        );
        assert!(bad(&[("HERALD_BLOBS_MAX_FILE_SIZE", "0")]).contains("at least 1 byte"));
        assert!(bad(&[("HERALD_BLOBS_URL", "gs://bucket")]).contains("storage.blobs.url"));
        let e = bad(&[
            ("HERALD_BLOBS_URL", "s3://ml-blobs"),
            ("HERALD_BLOBS_MAX_TOTAL_SIZE", "1TiB"),
        ]);
        assert!(e.contains("max_total_size") && e.contains("bucket"), "{e}");
        let e = bad(&[("HERALD_BLOBS_DOWNLOAD_URL_TTL", "0s")]);
        assert!(e.contains("storage.blobs.download_url_ttl"), "{e}");
    }
}
