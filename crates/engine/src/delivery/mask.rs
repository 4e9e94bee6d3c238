//! Secret values kept out of what came back. A destination's answer is stored in execution
//! history and shown by the API; a receiver that echoes its request (many test receivers do)
//! would otherwise put the access token it was sent into history. So every secret value a
//! request used is replaced by `***` in the answer and the error text before either is kept.

use std::borrow::Cow;

use herald_domain::template::MASK;

use super::http::Observed;
use super::slack::SlackCredential;
use super::OpenSecrets;

/// The secret values one request used, longest first (so a value that contains another is
/// masked whole).
#[derive(Debug, Default)]
pub struct SecretValues<'a>(Vec<Cow<'a, str>>);

impl<'a> SecretValues<'a> {
    fn new(values: impl IntoIterator<Item = Cow<'a, str>>) -> Self {
        let mut v: Vec<Cow<'a, str>> = values.into_iter().filter(|s| !s.is_empty()).collect();
        v.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        v.dedup();
        Self(v)
    }

    /// A webhook's: its access token and every secret its payload or signature used.
    pub fn of_webhook(secrets: &'a OpenSecrets) -> Self {
        let values = secrets
            .access_token
            .iter()
            .chain(&secrets.signing)
            .chain(&secrets.signing_previous)
            .chain(secrets.by_name.iter().map(|(_, v)| v))
            .map(|v| Cow::Borrowed(v.as_str()));
        Self::new(values)
    }

    /// A Slack integration's: its bot token, or its incoming-webhook URL (and that URL's path,
    /// which is the credential part of it).
    pub fn of_slack(credential: &'a SlackCredential) -> Self {
        match credential {
            SlackCredential::BotToken(token) => Self::new([Cow::Borrowed(token.as_str())]),
            SlackCredential::WebhookUrl(url) => {
                let path = reqwest::Url::parse(url)
                    .ok()
                    .map(|u| u[url::Position::BeforePath..].to_string())
                    .filter(|p| p.len() > 1)
                    .map(Cow::Owned);
                Self::new(std::iter::once(Cow::Borrowed(url.as_str())).chain(path))
            }
        }
    }

    /// `text` with every secret value replaced by `***`, and a secret's beginning at the very
    /// end masked too: the stored answer is cut after 4 KiB, possibly inside a secret.
    pub fn mask(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in &self.0 {
            if out.contains(&**secret) {
                out = out.replace(&**secret, MASK);
            }
        }
        for secret in &self.0 {
            let shortest = secret.len().min(4);
            let cut = (shortest..secret.len())
                .rev()
                .filter(|&n| secret.is_char_boundary(n))
                .find(|&n| out.ends_with(&secret[..n]));
            if let Some(n) = cut {
                out.truncate(out.len() - n);
                out.push_str(MASK);
            }
        }
        out
    }

    /// Masks the answer and the error text of an attempt.
    pub fn mask_observed(&self, mut o: Observed) -> Observed {
        if !self.0.is_empty() {
            o.response = o.response.map(|r| self.mask(&r));
            o.error = o.error.map(|e| self.mask(&e));
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_secret_value_is_masked_longest_first() {
        let s = SecretValues::new(["tok".into(), "tok-longer".into(), "".into()]);
        assert_eq!(
            s.mask("Authorization: Bearer tok-longer; also tok; and ok"),
            "Authorization: Bearer ***; also ***; and ok"
        );
        assert_eq!(s.mask("nothing here"), "nothing here");
    }

    #[test]
    fn a_secret_cut_off_at_the_end_is_masked() {
        let s = SecretValues::new(["ghp_abcdefgh".into()]);
        assert_eq!(s.mask("echo: Bearer ghp_abcd"), "echo: Bearer ***");
        // Three characters or fewer of it are too common to mean anything.
        assert_eq!(s.mask("echo: ghp"), "echo: ghp");
    }

    #[test]
    fn a_slack_webhook_url_is_masked_with_its_path() {
        let hook =
            SlackCredential::WebhookUrl("https://hooks.slack.com/services/T0/B0/XXXX".into());
        let s = SecretValues::of_slack(&hook);
        assert_eq!(
            s.mask("POST /services/T0/B0/XXXX to https://hooks.slack.com/services/T0/B0/XXXX"),
            "POST *** to ***"
        );
    }
}
