//! A webhook's destination, parsed once where it enters: an absolute `http` or `https` URL
//! with a host and no credentials (those belong in an access-token secret, which is masked
//! in history; a URL is shown as it is).

use crate::InvalidInput;

/// Longest webhook URL.
pub const MAX_URL: usize = 4096;

/// A parsed webhook URL. It keeps the text as given, which is what is stored and shown, and
/// the parsed form, which is what delivery uses.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WebhookUrl {
    text: String,
    /// `None` only for a stored URL that today's parser refuses (written by an older herald);
    /// delivering to it fails with a permanent error that says so.
    url: Option<url::Url>,
}

impl WebhookUrl {
    /// Parses a user-supplied URL, saying what is wrong with it. Error paths are relative to
    /// the URL (`""`).
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let bad = |why: &str| Err(InvalidInput::new("", format!("url {text:?} {why}")));
        if text.len() > MAX_URL {
            return bad("is too long");
        }
        let rest = if let Some(r) = text.strip_prefix("https://") {
            r
        } else if let Some(r) = text.strip_prefix("http://") {
            r
        } else {
            return bad("must start with http:// or https://");
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() {
            return bad("has no host");
        }
        if authority.contains('@') {
            return bad("must not contain credentials; use an access token secret");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return bad("must not contain spaces or control characters");
        }
        let url = match url::Url::parse(text) {
            Ok(url) => url,
            Err(e) => return bad(&format!("is not a valid URL: {e}")),
        };
        if url.host().is_none() {
            return bad("has no host");
        }
        Ok(Self {
            text: text.to_string(),
            url: Some(url),
        })
    }

    /// Wraps a URL read back from the store, where it was checked on the way in.
    pub fn from_trusted(text: String) -> Self {
        let url = url::Url::parse(&text).ok();
        Self { text, url }
    }

    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL; `None` only for a stored URL that no longer parses.
    pub fn url(&self) -> Option<&url::Url> {
        self.url.as_ref()
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl std::fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl serde::Serialize for WebhookUrl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> serde::Deserialize<'de> for WebhookUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(|e| serde::de::Error::custom(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_text_and_parses_once() {
        let u = WebhookUrl::parse("https://Hooks.Example.com:8443/deploy?x=1").unwrap();
        assert_eq!(u.as_str(), "https://Hooks.Example.com:8443/deploy?x=1");
        let parsed = u.url().unwrap();
        assert_eq!(parsed.host_str(), Some("hooks.example.com"));
        assert_eq!(parsed.port(), Some(8443));
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            "https://Hooks.Example.com:8443/deploy?x=1"
        );
    }

    #[test]
    fn refuses_what_cannot_be_a_webhook_naming_why() {
        for (text, why) in [
            ("ftp://example.com/", "must start with http:// or https://"),
            ("https:///path", "has no host"),
            ("https://user:pw@example.com/", "credentials"),
            ("https://example.com/a b", "spaces"),
            ("https://example.com:99999/", "not a valid URL"),
            ("https://[::1/", "not a valid URL"),
            ("http://exa<mple.com/", "not a valid URL"),
        ] {
            let e = WebhookUrl::parse(text).unwrap_err();
            assert!(e.message.contains(why), "{text}: {}", e.message);
            assert_eq!(e.path, "", "{text}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL));
        assert!(WebhookUrl::parse(&long)
            .unwrap_err()
            .message
            .contains("too long"));
    }

    #[test]
    fn deserializing_parses() {
        let e = serde_json::from_value::<WebhookUrl>(serde_json::json!("nope")).unwrap_err();
        assert!(e.to_string().contains("must start with http"), "{e}");
        let u: WebhookUrl =
            serde_json::from_value(serde_json::json!("http://127.0.0.1:9/x")).unwrap();
        assert_eq!(u.url().unwrap().port(), Some(9));
    }

    #[test]
    fn a_stored_url_that_no_longer_parses_is_kept_as_text() {
        let u = WebhookUrl::from_trusted("https://example.com:99999/".into());
        assert_eq!(u.as_str(), "https://example.com:99999/");
        assert!(u.url().is_none());
    }
}
