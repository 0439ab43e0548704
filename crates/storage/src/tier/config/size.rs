//! Sizes as people write them in `HOARD_*` settings: `10G`, `1.5G`, `500 MB`, `64KiB`,
//! `1048576`.
//!
//! The number is read by the `parse-size` crate (decimals, exact to the byte, no floating
//! point). The units, case-insensitive, with an optional space before them:
//!
//! * `K`, `M`, `G`, `T` (and `P`, `E`) alone are powers of 1024. hoard has always read them
//!   so, and a setting must not change meaning under an upgrade. (ccache reads `k`, `M`, `G`,
//!   `T` as powers of 1000: hoard's `10G` is ccache's `10Gi`.)
//! * `KiB`, `MiB`, `GiB`, `TiB` (or `Ki`, `Mi`, ...) are powers of 1024, as everywhere.
//! * `KB`, `MB`, `GB`, `TB` are powers of 1000, as in SI and ccache.
//! * `B` or no unit at all: bytes.

use parse_size::Config;

/// The units [`parse_size()`] takes, for messages.
pub const SIZE_UNITS: &str = "a number of bytes (decimals allowed) with an optional unit: \
    K, M, G, T or KiB, MiB, GiB, TiB (powers of 1024), KB, MB, GB, TB (powers of 1000)";

/// A size that does not parse, with the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a size: {problem}")]
pub struct SizeError {
    /// The text given, trimmed.
    pub value: String,
    /// What is wrong with it.
    pub problem: SizeProblem,
}

/// What is wrong with a size, without the text itself (for a caller that quotes it already).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeProblem {
    /// No number where one should be.
    #[error("want {SIZE_UNITS}")]
    NotANumber,
    /// A number, then a unit hoard does not know.
    #[error("unknown unit {0:?}; want {SIZE_UNITS}")]
    UnknownUnit(String),
    /// More bytes than a `u64` counts (16 EiB).
    #[error("more than 16 EiB")]
    TooLarge,
}

/// Parses a size like `10G`, `1.5G`, `500 MB`, `64KiB` or `1048576` into bytes: bare `K`,
/// `M`, `G`, `T` are binary, `KB`, `MB`, ... decimal, `KiB`, `MiB`, ... binary (see the
/// module's documentation). A fraction of a byte is rounded to the nearest.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let value = text.trim();
    let error = |problem| SizeError {
        value: value.to_owned(),
        problem,
    };
    let unit_at = value
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(0, |(i, c)| i + c.len_utf8());
    let (number, unit) = value.split_at(unit_at);
    let number = number.trim_end();
    if !number.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(error(SizeProblem::NotANumber));
    }
    let unit =
        binary_when_bare(unit).ok_or_else(|| error(SizeProblem::UnknownUnit(unit.to_owned())))?;
    Config::new()
        .parse_size(format!("{number} {unit}"))
        .map_err(|e| match e {
            parse_size::Error::PosOverflow => error(SizeProblem::TooLarge),
            _ => error(SizeProblem::NotANumber),
        })
}

/// The unit as `parse-size` must read it for hoard's meaning: a bare prefix letter becomes
/// binary (`G` → `Gi`); `None` for a unit that is not a size unit at all.
fn binary_when_bare(unit: &str) -> Option<String> {
    const PREFIXES: &[&str] = &["k", "m", "g", "t", "p", "e"];
    let lower = unit.to_ascii_lowercase();
    if PREFIXES.contains(&lower.as_str()) {
        return Some(format!("{lower}i"));
    }
    let prefix = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('i'))
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    (lower.is_empty() || lower == "b" || PREFIXES.contains(&prefix)).then_some(lower)
}

/// `bytes` in the largest binary unit that writes it exactly (`10G`, `1536K`, `1000`): what
/// [`parse_size()`] reads back to the same number.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(u32, &str); 6] = [
        (60, "E"),
        (50, "P"),
        (40, "T"),
        (30, "G"),
        (20, "M"),
        (10, "K"),
    ];
    for (shift, unit) in UNITS {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bare_prefixes_stay_binary_as_they_always_were() {
        assert_eq!(parse_size("1024"), Ok(1024));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("500M"), Ok(500 << 20));
        assert_eq!(parse_size("16m"), Ok(16 << 20));
        assert_eq!(parse_size("2 T"), Ok(2 << 40));
        assert_eq!(parse_size("3k"), Ok(3 << 10));
    }

    #[test]
    fn iec_units_are_binary_and_si_units_decimal() {
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("64 kib"), Ok(64 << 10));
        assert_eq!(parse_size("2Gi"), Ok(2 << 30));
        assert_eq!(parse_size("1TiB"), Ok(1 << 40));
        assert_eq!(parse_size("2 GB"), Ok(2_000_000_000));
        assert_eq!(parse_size("500kb"), Ok(500_000));
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("7B"), Ok(7));
        assert_eq!(parse_size("7 b"), Ok(7));
    }

    #[test]
    fn decimals_are_exact_to_the_byte() {
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size("2.5B"), Ok(3), "rounded to the nearest byte");
    }

    #[test]
    fn errors_name_the_value_the_unit_and_the_units_hoard_takes() {
        let err = parse_size("12 parsecs").unwrap_err();
        assert_eq!(err.problem, SizeProblem::UnknownUnit("parsecs".into()));
        let shown = err.to_string();
        for needle in [
            "\"12 parsecs\"",
            "\"parsecs\"",
            "KiB",
            "GB",
            "powers of 1000",
        ] {
            assert!(shown.contains(needle), "{needle} not in {shown}");
        }
        for text in [
            "ten", "", " ", "G", "-1G", "1.5.5G", "1X", "1GG", "1é", "1 éG", ".5M",
        ] {
            assert!(parse_size(text).is_err(), "{text:?}");
        }
        assert_eq!(
            parse_size("99999999999T").unwrap_err().problem,
            SizeProblem::TooLarge
        );
        assert_eq!(parse_size("1x").unwrap_err().value, "1x");
    }

    #[test]
    fn sizes_format_in_the_largest_exact_binary_unit() {
        assert_eq!(format_size(0), "0");
        assert_eq!(format_size(1000), "1000");
        assert_eq!(format_size(10 << 30), "10G");
        assert_eq!(format_size(1536 << 10), "1536K");
        assert_eq!(format_size(u64::MAX), u64::MAX.to_string());
    }

    proptest! {
        #[test]
        fn formatted_sizes_parse_back_to_the_same_bytes(bytes in any::<u64>()) {
            prop_assert_eq!(parse_size(&format_size(bytes)), Ok(bytes));
        }

        #[test]
        fn whole_numbers_in_every_unit_parse_to_their_bytes(
            n in 0u64..1_000_000,
            unit in prop::sample::select(vec![
                ("", 1u64), ("B", 1), ("K", 1 << 10), ("KiB", 1 << 10), ("KB", 1000),
                ("m", 1 << 20), ("MiB", 1 << 20), ("mb", 1_000_000), ("G", 1 << 30),
                ("GiB", 1 << 30), ("GB", 1_000_000_000), ("T", 1 << 40), ("TB", 1_000_000_000_000),
            ]),
            space in any::<bool>(),
        ) {
            let text = format!("{n}{}{}", if space { " " } else { "" }, unit.0);
            prop_assert_eq!(parse_size(&text), Ok(n * unit.1));
        }

        #[test]
        fn tenths_of_a_binary_unit_round_to_the_nearest_byte(
            whole in 0u64..10_000,
            tenth in 0u64..10,
            shift in prop::sample::select(vec![10u32, 20, 30, 40]),
        ) {
            let unit = match shift { 10 => "K", 20 => "M", 30 => "G", _ => "T" };
            let exact = (whole * 10 + tenth) << shift;
            let expected = (exact + 5) / 10;
            prop_assert_eq!(parse_size(&format!("{whole}.{tenth}{unit}")), Ok(expected));
        }

        #[test]
        fn any_text_is_a_size_or_an_error_naming_it(text in ".{0,24}") {
            if let Err(e) = parse_size(&text) {
                prop_assert_eq!(e.value, text.trim());
            }
        }
    }
}
