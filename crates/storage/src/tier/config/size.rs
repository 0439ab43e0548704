//! Sizes as people write them in `HOARD_*` variables: `10G`, `500M`, `64KiB`, `1048576`.
//!
//! Written here rather than taken from a crate (`bytesize`, `parse-size`): those read `GB` as
//! 10^9 bytes and take fractions, and hoard has always read every unit as binary and taken
//! whole numbers only; a setting must not change meaning under an upgrade.

/// Why a size does not parse. The text is not quoted: the caller names the setting and its
/// value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    /// No whole number at the start.
    #[error("want a number of bytes, optionally with K, M, G or T")]
    NotANumber,
    /// A unit that is not K, M, G or T (with an optional `B` or `iB`).
    #[error("unknown unit {0:?}: use K, M, G or T")]
    UnknownUnit(String),
    /// More bytes than a `u64` counts.
    #[error("size too large")]
    TooLarge,
}

/// Parses a size like `10G`, `500M`, `64KiB` or `1048576` (binary units).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| SizeError::NotANumber)?;
    let shift = match unit
        .trim()
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(SizeError::UnknownUnit(other.to_owned())),
    };
    number.checked_mul(1 << shift).ok_or(SizeError::TooLarge)
}
