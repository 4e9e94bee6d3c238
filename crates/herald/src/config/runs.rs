//! `[runs]`: what herald keeps of what `wandb` training scripts stream, beyond their history.
//! Today that is their console output: kept by default, as W&B keeps it, up to a number of
//! lines per run, so that a script printing in a tight loop cannot fill the database.

use anyhow::bail;
use herald_domain::console::ConsolePolicy;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSettings {
    /// Keep console lines, or only count them.
    pub console: ConsoleMode,
    /// Lines kept per run; later ones are counted, not kept.
    pub console_max_lines: i64,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleMode {
    Keep,
    Drop,
}

impl RunSettings {
    /// The policy the file_stream endpoint applies; checked by [`RunSettings::validate`].
    pub fn console_policy(&self) -> ConsolePolicy {
        ConsolePolicy {
            keep: self.console == ConsoleMode::Keep,
            max_lines: self.console_max_lines,
        }
    }

    pub(super) fn validate(&self) -> anyhow::Result<()> {
        if self.console_max_lines < 1 {
            bail!(
                "invalid configuration: runs.console_max_lines must be at least 1 (runs.console = \"drop\" keeps none)"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use herald_domain::console::DEFAULT_MAX_LINES;

    use crate::config::{Config, Overrides};

    fn load(pairs: &'static [(&'static str, &'static str)]) -> anyhow::Result<Config> {
        let env = move |k: &str| {
            pairs
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| v.to_string())
        };
        Config::load_from(&Overrides::default(), env)
    }

    #[test]
    fn console_lines_are_kept_by_default_and_can_be_dropped_or_capped() {
        let policy = load(&[]).unwrap().runs.console_policy();
        assert_eq!(policy, herald_domain::console::ConsolePolicy::default());
        assert!(policy.keep);
        assert_eq!(policy.max_lines, DEFAULT_MAX_LINES);

        let policy = load(&[
            ("HERALD_RUNS_CONSOLE", "drop"),
            ("HERALD_RUNS_CONSOLE_MAX_LINES", "500"),
        ])
        .unwrap()
        .runs
        .console_policy();
        assert!(!policy.keep);
        assert_eq!(policy.max_lines, 500);
    }

    #[test]
    fn bad_console_settings_are_named() {
        let e = load(&[("HERALD_RUNS_CONSOLE", "sometimes")])
            .unwrap_err()
            .to_string();
        for part in ["runs.console", "HERALD_RUNS_CONSOLE", "keep, drop"] {
            assert!(e.contains(part), "{part} missing from: {e}");
        }
        let e = load(&[("HERALD_RUNS_CONSOLE_MAX_LINES", "0")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("runs.console_max_lines") && e.contains("drop"),
            "{e}"
        );
        let e = load(&[("HERALD_RUNS_CONSOLE_MAX_LINES", "many")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("HERALD_RUNS_CONSOLE_MAX_LINES"), "{e}");
    }
}
