//! `hoard --show-stats` for people: an aligned table, in the way `ccache -s` prints one.

use std::collections::BTreeMap;
use std::fmt::Write;

use hoard_protocol::Stats;

use crate::config::Settings;

/// Renders the statistics as aligned text.
pub fn render(stats: &Stats, settings: &Settings) -> String {
    let mut out = String::new();
    let lookups = stats.cache_hits + stats.cache_misses;
    let rate = if lookups == 0 {
        0.0
    } else {
        // Counts stay far below 2^52, so the conversion is exact.
        #[allow(clippy::cast_precision_loss)]
        let r = stats.cache_hits as f64 * 100.0 / lookups as f64;
        r
    };
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
    row(
        "Cache size",
        format!(
            "{} / {}",
            human(stats.cache_size_bytes),
            human(stats.cache_max_bytes)
        ),
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

/// Each tier's hit rate and counters, local disk first.
fn tiers(out: &mut String, stats: &Stats) {
    if stats.tiers.is_empty() {
        return;
    }
    let _ = writeln!(out, "Tiers:");
    for tier in &stats.tiers {
        let lookups = tier.hits + tier.misses;
        #[allow(clippy::cast_precision_loss)]
        let rate = if lookups == 0 {
            0.0
        } else {
            tier.hits as f64 * 100.0 / lookups as f64
        };
        let _ = writeln!(
            out,
            "  {:<12} {:>8} hits ({rate:.1} %) {:>8} misses {:>8} writes {:>6} errors  {}",
            tier.name, tier.hits, tier.misses, tier.writes, tier.errors, tier.state
        );
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

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes;
    let mut unit = 0;
    while value >= 10 * 1024 && unit < UNITS.len() - 1 {
        value /= 1024;
        unit += 1;
    }
    format!("{value} {}", UNITS[unit])
}
