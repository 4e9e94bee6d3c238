//! Retry policy as data: a schedule of delays after each failed attempt, with jitter, and the
//! one function that also honours a destination's `Retry-After`.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng as _;

/// The longest `Retry-After` herald honours; beyond it, it waits this long.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the 1st, 2nd, … failed attempt; its length is the number of retries.
    pub schedule: Vec<Duration>,
    /// ±fraction of each delay, so that many failures do not retry in lockstep.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h (≈ 3 days in all), ±20 %: quick
    /// retries for a blip, then spaced out so a destination down for a weekend still gets its
    /// deliveries.
    fn default() -> Self {
        let h = 3600;
        Self {
            schedule: [5, 300, 1800, 2 * h, 5 * h, 10 * h, 14 * h, 20 * h, 24 * h]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before the next attempt after `failed` failed attempts in this round (1 for
    /// the first failure), or `None` when retries are used up. A `Retry-After` from the
    /// destination replaces the scheduled delay (capped at a day).
    pub fn next_delay(&self, failed: usize, retry_after: Option<Duration>) -> Option<Duration> {
        let scheduled = *self.schedule.get(failed.checked_sub(1)?)?;
        if let Some(ra) = retry_after {
            return Some(ra.min(MAX_RETRY_AFTER));
        }
        let j = self.jitter.clamp(0.0, 1.0);
        if j == 0.0 {
            return Some(scheduled);
        }
        let factor = rand::thread_rng().gen_range(1.0 - j..=1.0 + j);
        Some(scheduled.mul_f64(factor))
    }

    /// Attempts in a full round: the first plus one per scheduled retry.
    pub fn max_attempts(&self) -> usize {
        self.schedule.len() + 1
    }
}

/// Parses `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
    Some((when - now).to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_is_about_three_days() {
        let p = RetryPolicy::default();
        let total: Duration = p.schedule.iter().sum();
        assert_eq!(
            total.as_secs(),
            5 + 300 + 1800 + 3600 * (2 + 5 + 10 + 14 + 20 + 24)
        );
        assert_eq!(p.max_attempts(), 10);
    }

    #[test]
    fn delays_follow_the_schedule_with_bounded_jitter() {
        let p = RetryPolicy {
            schedule: vec![Duration::from_secs(10), Duration::from_secs(100)],
            jitter: 0.2,
        };
        for _ in 0..200 {
            let d = p.next_delay(1, None).unwrap();
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(12),
                "{d:?}"
            );
        }
        assert!(p.next_delay(2, None).unwrap() >= Duration::from_secs(80));
        assert_eq!(p.next_delay(3, None), None, "retries used up");
        assert_eq!(p.next_delay(0, None), None);
        let exact = RetryPolicy {
            jitter: 0.0,
            ..p.clone()
        };
        assert_eq!(exact.next_delay(1, None), Some(Duration::from_secs(10)));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let p = RetryPolicy {
            schedule: vec![Duration::from_secs(10)],
            jitter: 0.0,
        };
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(10 * 86400))),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(
            p.next_delay(2, Some(Duration::from_secs(2))),
            None,
            "no retries left"
        );
    }

    #[test]
    fn retry_after_formats() {
        let now = DateTime::parse_from_rfc2822("Wed, 21 Oct 2015 07:28:00 GMT")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
