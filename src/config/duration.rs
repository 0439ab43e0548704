//! Durations as people write them in settings and flags: `30`, `30s`, `10m`, `2h`, `7d`,
//! `1h30m`. A bare number is seconds, which is what every duration setting took before units
//! were accepted; anything else is read by `humantime` (`s`, `m`, `h`, `d`, `w`, `ms`, ...,
//! combined as `1h30m` or `1h 30m`).

use std::time::Duration;

/// What [`parse_duration`] takes, for messages.
pub const DURATION_FORMS: &str =
    "want seconds (30) or a duration such as 30s, 10m, 2h, 7d or 1h30m";

/// A duration that does not parse, with the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a duration: {problem}")]
pub struct DurationError {
    /// The text given, trimmed.
    pub value: String,
    /// What is wrong with it, without the text (for a caller that quotes it already).
    pub problem: DurationProblem,
}

/// What is wrong with a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationProblem {
    /// Not a number of seconds, and not a duration `humantime` reads; its reason.
    #[error("{0}; {DURATION_FORMS}")]
    Malformed(String),
}

/// Parses a duration: a bare whole number is seconds (`600`), else a `humantime` duration
/// (`30s`, `10m`, `2h`, `7d`, `1h30m`, `500ms`).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let value = text.trim();
    let malformed = |why: String| DurationError {
        value: value.to_owned(),
        problem: DurationProblem::Malformed(why),
    };
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|e| malformed(e.to_string()));
    }
    humantime::parse_duration(value).map_err(|e| malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_bare_number_is_seconds_as_it_always_was() {
        assert_eq!(parse_duration("600"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration(" 0 "), Ok(Duration::ZERO));
    }

    #[test]
    fn units_and_combinations_are_read() {
        let secs = Duration::from_secs;
        assert_eq!(parse_duration("30s"), Ok(secs(30)));
        assert_eq!(parse_duration("10m"), Ok(secs(600)));
        assert_eq!(parse_duration("2h"), Ok(secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(secs(7 * 86400)));
        assert_eq!(parse_duration("1h30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("1h 30m"), Ok(secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5h"), Ok(secs(5400)));
    }

    #[test]
    fn errors_name_the_value_and_the_forms_taken() {
        for text in [
            "",
            "ten",
            "10 parsecs",
            "-5",
            "5x",
            "1h30",
            "99999999999999999999",
        ] {
            let err = parse_duration(text).unwrap_err();
            let shown = err.to_string();
            assert!(
                shown.contains(&format!("{:?}", text.trim())) && shown.contains("1h30m"),
                "{shown}"
            );
        }
    }

    proptest! {
        #[test]
        fn bare_seconds_parse_as_seconds(n in any::<u64>()) {
            prop_assert_eq!(parse_duration(&n.to_string()), Ok(Duration::from_secs(n)));
        }

        #[test]
        fn formatted_durations_parse_back(secs in 0u64..100_000_000_000, nanos in 0u32..1_000_000_000) {
            let d = Duration::new(secs, nanos);
            let text = humantime::format_duration(d).to_string();
            prop_assert_eq!(parse_duration(&text), Ok(d));
        }

        #[test]
        fn any_text_is_a_duration_or_an_error_naming_it(text in ".{0,24}") {
            if let Err(e) = parse_duration(&text) {
                prop_assert_eq!(e.value, text.trim());
            }
        }
    }
}
