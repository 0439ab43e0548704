//! `hoard --show-stats` for people: an aligned table, in the way `ccache -s` prints one.

use std::collections::BTreeMap;
use std::fmt::Write;

use hoard_protocol::{Stats, TierStats};

use crate::config::Settings;

/// Renders the statistics as aligned text.
pub fn render(stats: &Stats, settings: &Settings) -> String {
    let mut out = String::new();
    let lookups = stats.cache_hits + stats.cache_misses;
    let rate = percent(stats.cache_hits, lookups);
    let mut row = |name: &str, value: String| {
        let _ = writeln!(out, "{name:<32} {value:>14}");
    };
    row("Cache directory", settings.cache_dir.display().to_string());
    row("Cacheable calls", lookups.to_string());
    row("  Hits", format!("{} ({rate:.1} %)", stats.cache_hits));
    row("  Misses", stats.cache_misses.to_string());
    row("Non-cacheable calls", stats.non_cacheable.to_string());
    row("Local fallbacks", stats.local_fallbacks.to_string());
    row("Cache errors", stats.cache_errors.to_string());
    row("Corrupt entries removed", stats.corrupt_entries.to_string());
    row("Time saved", duration(stats.time_saved_ms));
    row(
        "Cache size",
        format!(
            "{} / {}",
            human(stats.cache_size_bytes),
            human(stats.cache_max_bytes)
        ),
    );
    rates(
        &mut out,
        "Hit rate by protocol",
        &stats.hits_by_protocol,
        &stats.misses_by_protocol,
        |v| format!("v{v}"),
    );
    rates(
        &mut out,
        "Hit rate by language",
        &stats.hits_by_language,
        &stats.misses_by_language,
        str::to_owned,
    );
    for (title, map) in [
        ("Hits by language", &stats.hits_by_language),
        ("Misses by language", &stats.misses_by_language),
        ("Non-cacheable reasons", &stats.non_cacheable_reasons),
        ("Local fallback causes", &stats.local_fallback_causes),
        ("Requests by protocol", &stats.requests_by_protocol),
    ] {
        section(&mut out, title, map);
    }
    tiers(&mut out, stats);
    if !stats.transfers.is_zero() {
        let _ = writeln!(out, "Transfers (hits and puts):");
        let _ = writeln!(
            out,
            "  {:<30} {:>14}",
            "shared filesystem", stats.transfers.shared_fs
        );
        let _ = writeln!(out, "  {:<30} {:>14}", "inline", stats.transfers.inline);
    }
    out
}

/// Each tier's hit rate, counters and state, local disk first.
fn tiers(out: &mut String, stats: &Stats) {
    if stats.tiers.is_empty() {
        return;
    }
    let _ = writeln!(out, "Tiers:");
    for tier in &stats.tiers {
        let rate = percent(tier.hits, tier.hits + tier.misses);
        let mut notes = tier_state(tier);
        if tier.prefetched > 0 {
            let _ = write!(notes, ", {} prefetched", tier.prefetched);
        }
        if tier.untrusted > 0 {
            let _ = write!(notes, ", {} untrusted", tier.untrusted);
        }
        let _ = writeln!(
            out,
            "  {:<12} {:>8} hits ({rate:.1} %) {:>8} misses {:>8} writes {:>6} errors {:>6} timeouts {:>6} skipped  {notes}",
            tier.name,
            tier.hits,
            tier.misses,
            tier.writes,
            tier.errors,
            tier.timeouts,
            tier.skipped
        );
    }
}

/// A tier's state in words: `healthy`, `read-only`, `failing, retry in 12 s` (its circuit
/// breaker is open: the tier is not called until then), `failing, probing` (one call is
/// trying it again). A state this client does not know is shown as the server named it.
pub(crate) fn tier_state(tier: &TierStats) -> String {
    let failing = match (tier.state.as_str(), tier.retry_in_ms) {
        ("closed", _) => None,
        ("open", Some(ms)) => Some(format!("failing, retry in {} s", ms.div_ceil(1000))),
        ("open", None) => Some("failing".to_owned()),
        ("half_open", _) => Some("failing, probing".to_owned()),
        (other, _) => Some(other.to_owned()),
    };
    match (failing, tier.read_only) {
        (None, false) => "healthy".to_owned(),
        (None, true) => "read-only".to_owned(),
        (Some(failing), false) => failing,
        (Some(failing), true) => format!("{failing}; read-only"),
    }
}

/// Hits against lookups per name (protocol version, language), for every name with either.
fn rates(
    out: &mut String,
    title: &str,
    hits: &BTreeMap<String, u64>,
    misses: &BTreeMap<String, u64>,
    label: impl Fn(&str) -> String,
) {
    let names: std::collections::BTreeSet<&String> = hits.keys().chain(misses.keys()).collect();
    if names.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for name in names {
        let h = hits.get(name).copied().unwrap_or(0);
        let lookups = h + misses.get(name).copied().unwrap_or(0);
        let value = format!("{h} / {lookups} ({:.1} %)", percent(h, lookups));
        let _ = writeln!(out, "  {:<30} {value:>14}", label(name));
    }
}

/// `part` as a percentage of `whole` (0 when `whole` is).
pub(crate) fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        return 0.0;
    }
    // Counts stay far below 2^52, so the conversion is exact.
    #[allow(clippy::cast_precision_loss)]
    let r = part as f64 * 100.0 / whole as f64;
    r
}

/// Milliseconds as a person reads them: `3.2 s`, `4 min 12 s`, `2 h 5 min`.
pub(crate) fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0..60 => format!("{}.{} s", secs, (ms % 1000) / 100),
        60..3600 => format!("{} min {} s", secs / 60, secs % 60),
        _ => format!("{} h {} min", secs / 3600, (secs % 3600) / 60),
    }
}

fn section(out: &mut String, title: &str, map: &BTreeMap<String, u64>) {
    if map.is_empty() {
        return;
    }
    let _ = writeln!(out, "{title}:");
    for (name, count) in map {
        let _ = writeln!(out, "  {name:<30} {count:>14}");
    }
}

/// A size as a person reads it, in binary units: `512 B`, `7.0 GiB`.
pub fn human(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_seconds_minutes_or_hours() {
        assert_eq!(duration(0), "0.0 s");
        assert_eq!(duration(3_250), "3.2 s");
        assert_eq!(duration(252_000), "4 min 12 s");
        assert_eq!(duration(7_500_000), "2 h 5 min");
    }

    fn tier(state: &str, retry_in_ms: Option<u64>, read_only: bool) -> TierStats {
        TierStats {
            name: "redis".into(),
            state: state.into(),
            retry_in_ms,
            read_only,
            ..TierStats::default()
        }
    }

    #[test]
    fn tier_states_read_as_words() {
        assert_eq!(tier_state(&tier("closed", None, false)), "healthy");
        assert_eq!(tier_state(&tier("closed", None, true)), "read-only");
        assert_eq!(
            tier_state(&tier("open", Some(11_200), false)),
            "failing, retry in 12 s"
        );
        assert_eq!(
            tier_state(&tier("open", Some(4_000), true)),
            "failing, retry in 4 s; read-only"
        );
        assert_eq!(tier_state(&tier("open", None, false)), "failing");
        assert_eq!(
            tier_state(&tier("half_open", None, false)),
            "failing, probing"
        );
    }

    #[test]
    fn a_tier_row_shows_writes_timeouts_and_skips() {
        let stats = Stats {
            tiers: vec![TierStats {
                writes: 41,
                timeouts: 3,
                skipped: 5,
                ..tier("open", Some(9_000), false)
            }],
            ..Stats::default()
        };
        let mut out = String::new();
        tiers(&mut out, &stats);
        let row = out.lines().nth(1).unwrap();
        for needle in [
            " 41 writes",
            " 3 timeouts",
            " 5 skipped",
            "failing, retry in 9 s",
        ] {
            assert!(row.contains(needle), "{needle:?} not in {row:?}");
        }
        assert!(!row.contains("open"), "{row}");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(7 * 1024 * 1024 * 1024), "7.0 GiB");
    }

    #[test]
    fn hit_rates_cover_every_version_with_hits_or_misses() {
        let hits = BTreeMap::from([("2".to_owned(), 3)]);
        let misses = BTreeMap::from([("1".to_owned(), 4), ("2".to_owned(), 1)]);
        let mut out = String::new();
        rates(&mut out, "Hit rate by protocol", &hits, &misses, |v| {
            format!("v{v}")
        });
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(lines[0], "Hit rate by protocol:");
        assert!(
            lines[1].starts_with("v1") && lines[1].ends_with("0 / 4 (0.0 %)"),
            "{out}"
        );
        assert!(
            lines[2].starts_with("v2") && lines[2].ends_with("3 / 4 (75.0 %)"),
            "{out}"
        );
    }
}
