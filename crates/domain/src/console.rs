//! A run's console: what its script printed, as the `wandb` SDK streams it (the file
//! `output.log` over file_stream). wandb-core emulates a terminal, so a later post may rewrite
//! a line it sent before (a progress bar redrawn with `\r`): a line is addressed by its number,
//! and the last text sent for a number is the line.
//!
//! This module owns what herald keeps of those lines ([`ConsolePolicy`]) and how a kept line
//! reads ([`ConsoleEntry::read`]): wandb-core writes each as `<UTC time> <text>`, with `ERROR `
//! in front for standard error.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;

/// Most lines a run keeps by default (`runs.console_max_lines`).
pub const DEFAULT_MAX_LINES: i64 = 100_000;

/// Longest line kept, in bytes. A longer one is cut at a character boundary and ends in `…`:
/// a script that prints a whole tensor on one line should not cost a megabyte a line, and with
/// the line cap this bounds what one run can take (100,000 × 16 KiB at the defaults, where
/// console lines are usually under 200 bytes).
pub const MAX_LINE_BYTES: usize = 16 * 1024;

/// What herald keeps of the console lines runs stream. Every line is counted either way (the
/// count is where the SDK's next post, and a resumed run, continue).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsolePolicy {
    /// Keep the lines' text, or only count them.
    pub keep: bool,
    /// Lines numbered this or higher are counted but not kept.
    pub max_lines: i64,
}

impl Default for ConsolePolicy {
    /// As `config/default.toml` has it: kept, up to [`DEFAULT_MAX_LINES`] a run.
    fn default() -> Self {
        Self {
            keep: true,
            max_lines: DEFAULT_MAX_LINES,
        }
    }
}

/// One console line: its number (0-based, as the SDK's offsets count) and its text as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedLine {
    pub line: i64,
    pub text: String,
}

impl ConsolePolicy {
    /// The lines of `content`, posted from line `offset`, that are kept: none when the policy
    /// drops them, and none numbered past the cap; each cut to [`MAX_LINE_BYTES`].
    pub fn kept(&self, offset: i64, content: Vec<String>) -> Vec<NumberedLine> {
        if !self.keep || offset >= self.max_lines {
            return Vec::new();
        }
        let room = usize::try_from(self.max_lines - offset).unwrap_or(usize::MAX);
        content
            .into_iter()
            .take(room)
            .enumerate()
            .map(|(i, text)| NumberedLine {
                line: offset + i as i64,
                text: cut(without_nul(text)),
            })
            .collect()
    }
}

/// `text` with each U+0000 (which a script may print, and PostgreSQL cannot store in text) as
/// U+FFFD, the character that stands for what cannot be shown.
fn without_nul(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// `text` cut to [`MAX_LINE_BYTES`], ending in `…` when it was longer.
fn cut(mut text: String) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text;
    }
    let mut end = MAX_LINE_BYTES - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push('…');
    text
}

/// Which stream a console line was printed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ConsoleStream {
    Stdout,
    Stderr,
}

/// A kept line as read back: its stream, when it was printed, and what was printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsoleEntry {
    /// The line's number, from 0.
    pub line: i64,
    pub stream: ConsoleStream,
    /// When the script printed it, as the SDK stamped it; null for a line without a stamp.
    pub time: Option<DateTime<Utc>>,
    /// What was printed (a label the script gave its output, `[rank-0]`, stays in front).
    pub text: String,
}

/// wandb-core's stamp: UTC, microseconds, no zone (Python's `isoformat()`).
const STAMP: &str = "%Y-%m-%dT%H:%M:%S%.6f";
const STAMP_LEN: usize = "2026-12-06T17:10:08.123456".len();
const STDERR: &str = "ERROR ";

impl ConsoleEntry {
    /// Reads a line as wandb-core wrote it: `[ERROR ]<stamp> <text>`. A line not in that form
    /// (another client's, or a cut one) is all text, on stdout, without a time.
    pub fn read(line: NumberedLine) -> Self {
        let NumberedLine { line, text: raw } = line;
        let (stream, rest) = match raw.strip_prefix(STDERR) {
            Some(rest) => (ConsoleStream::Stderr, rest),
            None => (ConsoleStream::Stdout, raw.as_str()),
        };
        let stamped = rest
            .get(..STAMP_LEN)
            .filter(|_| rest[STAMP_LEN..].starts_with(' '))
            .and_then(|s| NaiveDateTime::parse_from_str(s, STAMP).ok());
        match stamped {
            Some(t) => Self {
                line,
                stream,
                time: Some(t.and_utc()),
                text: rest[STAMP_LEN + 1..].to_string(),
            },
            None => Self {
                line,
                stream: ConsoleStream::Stdout,
                time: None,
                text: raw,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lines(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn kept_lines_are_numbered_from_the_offset_up_to_the_cap() {
        let policy = ConsolePolicy {
            keep: true,
            max_lines: 4,
        };
        let kept = policy.kept(2, lines(&["a", "b", "c"]));
        assert_eq!(
            kept,
            [
                NumberedLine {
                    line: 2,
                    text: "a".into()
                },
                NumberedLine {
                    line: 3,
                    text: "b".into()
                }
            ]
        );
        assert!(policy.kept(4, lines(&["d"])).is_empty());
        let drop = ConsolePolicy {
            keep: false,
            max_lines: 4,
        };
        assert!(drop.kept(0, lines(&["a"])).is_empty());
    }

    #[test]
    fn a_nul_is_kept_as_the_replacement_character() {
        let kept = ConsolePolicy::default().kept(0, lines(&["a\0b\0"]));
        assert_eq!(kept[0].text, "a\u{FFFD}b\u{FFFD}");
    }

    #[test]
    fn long_lines_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let kept = ConsolePolicy::default().kept(0, vec![long]);
        let text = &kept[0].text;
        assert!(text.len() <= MAX_LINE_BYTES, "{}", text.len());
        assert!(text.ends_with("é…"));
        let exact = "x".repeat(MAX_LINE_BYTES);
        assert_eq!(
            ConsolePolicy::default().kept(0, vec![exact.clone()])[0].text,
            exact
        );
    }

    #[test]
    fn lines_read_as_wandb_core_writes_them() {
        let read = |text: &str| {
            ConsoleEntry::read(NumberedLine {
                line: 7,
                text: text.into(),
            })
        };
        let out = read("2026-12-06T17:10:08.123456 epoch 1: loss 0.5");
        assert_eq!(out.stream, ConsoleStream::Stdout);
        assert_eq!(out.text, "epoch 1: loss 0.5");
        assert_eq!(
            out.time.unwrap().to_rfc3339(),
            "2026-12-06T17:10:08.123456+00:00"
        );
        let err = read("ERROR 2026-12-06T17:10:08.000001 Traceback (most recent call last):");
        assert_eq!(err.stream, ConsoleStream::Stderr);
        assert_eq!(err.text, "Traceback (most recent call last):");
        assert_eq!(read("2026-12-06T17:10:08.123456 ").text, "");
        for plain in [
            "no stamp here",
            "ERROR something broke",
            "2026-12-06 17:10:08.123456 x",
            "2026-12-06T17:10:08.123456",
            "2026-13-06T17:10:08.123456 x",
            "",
        ] {
            let got = read(plain);
            assert_eq!(
                (got.stream, got.time, got.text.as_str()),
                (ConsoleStream::Stdout, None, plain),
                "{plain:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn reading_never_panics_and_keeps_the_text(raw in ".{0,60}") {
            let got = ConsoleEntry::read(NumberedLine { line: 0, text: raw.clone() });
            prop_assert!(raw.ends_with(&got.text));
        }

        #[test]
        fn kept_lines_stay_within_the_limits(
            offset in 0i64..50,
            max in 0i64..60,
            n in 0usize..20,
            len in 0usize..(2 * MAX_LINE_BYTES),
        ) {
            let policy = ConsolePolicy { keep: true, max_lines: max };
            let kept = policy.kept(offset, vec!["ü".repeat(len / 2); n]);
            prop_assert_eq!(kept.len() as i64, (max - offset).clamp(0, n as i64));
            for (i, l) in kept.iter().enumerate() {
                prop_assert_eq!(l.line, offset + i as i64);
                prop_assert!(l.text.len() <= MAX_LINE_BYTES);
            }
        }
    }
}
