//! The exposition read back: a small reader of the text format (test-only: it takes the
//! samples apart, label escapes included), the sample figures, every name's prefix and
//! suffix, and a property over arbitrary label values that clients can choose.

// The figures compared are whole numbers and exact binary fractions, written and read back
// by shortest round-trip formatting: equal means equal, and a count read back as a float
// converts to the same whole number.
#![allow(clippy::float_cmp, clippy::cast_sign_loss)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::metrics::sample;

/// One sample line: its name, labels and value.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Reads `name{k="v",...} value` with the format's escapes (`\\`, `\"`, `\n`).
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("a name");
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices();
        loop {
            let (start, c) = chars.next().expect("a label or }");
            if c == '}' {
                rest = &body[start + 1..];
                break;
            }
            if c == ',' {
                continue;
            }
            let eq = body[start..].find("=\"").expect("k=\"") + start;
            let key = body[start..eq].to_owned();
            while chars.next().is_some_and(|(i, _)| i < eq + 1) {}
            let mut value = String::new();
            loop {
                match chars.next().expect("a closing quote").1 {
                    '"' => break,
                    '\\' => match chars.next().expect("an escape").1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    other => value.push(other),
                }
            }
            labels.insert(key, value);
        }
    }
    let value = rest.trim();
    let value = match value {
        "+Inf" => f64::INFINITY,
        v => v.parse().unwrap_or_else(|_| panic!("a value in {line:?}")),
    };
    Sample {
        name,
        labels,
        value,
    }
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(parse_sample)
        .collect()
}

/// The value of the one sample named `name` whose labels include `labels`.
fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<&Sample> = all
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    found[0].value
}

fn total(all: &[Sample], name: &str) -> f64 {
    all.iter().filter(|s| s.name == name).map(|s| s.value).sum()
}

#[test]
fn the_prometheus_text_shows_every_gathered_figure() {
    let text = render(sample::gathered(), Format::PrometheusText).unwrap();
    let all = samples(&text);
    assert_eq!(
        value(&all, "hoard_cache_hits_total", &[("language", "c")]),
        4.0
    );
    assert_eq!(total(&all, "hoard_cache_hits_total"), 5.0);
    assert_eq!(total(&all, "hoard_cache_misses_total"), 2.0);
    assert_eq!(value(&all, "hoard_cache_errors_total", &[]), 1.0);
    assert_eq!(value(&all, "hoard_cache_writes_total", &[]), 2.0);
    assert_eq!(value(&all, "hoard_time_saved_seconds_total", &[]), 1.5);
    assert_eq!(value(&all, "hoard_cache_size_bytes", &[]), 4096.0);
    assert_eq!(
        value(&all, "hoard_cache_limit_bytes", &[]),
        f64::from(1u32 << 30)
    );
    assert_eq!(value(&all, "hoard_cache_entries", &[]), 4.0);
    assert_eq!(
        value(&all, "hoard_transfers_total", &[("way", "local")]),
        2.0
    );
    assert_eq!(
        value(&all, "hoard_requests_total", &[("protocol", "2")]),
        7.0
    );
    let redis = [("tier", "redis")];
    assert_eq!(
        value(
            &all,
            "hoard_tier_lookups_total",
            &[("tier", "redis"), ("result", "hit")]
        ),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "hoard_tier_writes_total",
            &[("tier", "local"), ("result", "stored")]
        ),
        1.0
    );
    assert_eq!(value(&all, "hoard_tier_healthy", &redis), 0.0);
    assert_eq!(value(&all, "hoard_tier_healthy", &[("tier", "local")]), 1.0);
    assert_eq!(value(&all, "hoard_tier_retry_in_seconds", &redis), 12.0);
    assert_eq!(value(&all, "hoard_tier_read_only", &redis), 1.0);
    // Buckets are cumulative, `+Inf` equals the count.
    let get = [("tier", "redis"), ("op", "get")];
    let bucket = |le| {
        let labels = [get[0], get[1], ("le", le)];
        value(
            &all,
            "hoard_tier_operation_duration_seconds_bucket",
            &labels,
        )
    };
    assert_eq!(
        (bucket("0.001"), bucket("0.01"), bucket("+Inf")),
        (2.0, 3.0, 3.0)
    );
    assert_eq!(
        value(&all, "hoard_tier_operation_duration_seconds_count", &get),
        3.0
    );
    assert_eq!(
        value(
            &all,
            "hoard_connections_accepted_total",
            &[("listener", "unix")]
        ),
        9.0
    );
    assert_eq!(
        value(&all, "hoard_connections_open", &[("listener", "tcp")]),
        1.0
    );
    assert_eq!(
        value(
            &all,
            "hoard_peers_refused_total",
            &[("reason", "wrong_token")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &all,
            "hoard_server_info",
            &[("protocol_min", "1"), ("protocol_max", "2")]
        ),
        1.0
    );
    assert!(
        text.contains("# TYPE hoard_cache_hits_total counter\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE hoard_tier_operation_duration_seconds histogram\n"));
}

#[test]
fn every_name_has_the_prefix_and_counters_end_in_total() {
    let text = render(sample::gathered(), Format::PrometheusText).unwrap();
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut words = line.split(' ').skip(2);
        let (name, kind) = (words.next().unwrap(), words.next().unwrap());
        assert!(name.starts_with("hoard_"), "{line}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
    }
    for sample in samples(&text) {
        assert!(sample.name.starts_with("hoard_"), "{sample:?}");
    }
}

#[test]
fn openmetrics_is_the_same_samples_ending_in_eof() {
    let open = render(sample::gathered(), Format::OpenMetrics).unwrap();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(open.contains("# TYPE hoard_cache_hits counter\n"));
    assert!(open.contains("# UNIT hoard_cache_size_bytes bytes\n"));
    let classic = render(sample::gathered(), Format::PrometheusText).unwrap();
    // The same samples; only a histogram's lines come in another order.
    let sorted = |text: &str| {
        let mut all = samples(text);
        all.sort_by(|a, b| (&a.name, &a.labels).cmp(&(&b.name, &b.labels)));
        all
    };
    assert_eq!(sorted(&open), sorted(&classic));
    assert!(
        Format::OpenMetrics
            .content_type()
            .starts_with("application/openmetrics-text")
    );
    assert!(
        Format::PrometheusText
            .content_type()
            .starts_with("text/plain; version=0.0.4")
    );
}

proptest! {
    /// Languages, reasons and causes come from clients' event lines: whatever they are, each
    /// is one sample whose label reads back as it was, and a metric's samples add up to its
    /// total (what a split does not account for is `unknown`'s).
    #[test]
    fn any_label_a_client_chooses_reads_back_and_samples_add_up(
        languages in prop::collection::btree_map(any::<String>(), 0u64..1000, 0..6),
        unsplit in 0u64..1000,
        reasons in prop::collection::btree_map(any::<String>(), 0u64..1000, 0..6),
    ) {
        let mut gathered = sample::gathered();
        gathered.stats.hits_by_language = languages.clone();
        gathered.stats.cache_hits = languages.values().sum::<u64>() + unsplit;
        gathered.stats.non_cacheable_reasons = reasons.clone();
        gathered.stats.non_cacheable = reasons.values().sum();
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let all = samples(&render(gathered.clone(), format).unwrap());
            let hits: Vec<&Sample> =
                all.iter().filter(|s| s.name == "hoard_cache_hits_total").collect();
            let mut expected = languages.clone();
            if unsplit > 0 {
                *expected.entry("unknown".into()).or_default() += unsplit;
            }
            let read: BTreeMap<String, u64> = hits
                .iter()
                .map(|s| (s.labels["language"].clone(), s.value as u64))
                .collect();
            prop_assert_eq!(read, expected);
            prop_assert_eq!(
                total(&all, "hoard_cache_hits_total") as u64,
                gathered.stats.cache_hits
            );
            let read: BTreeMap<String, u64> = all
                .iter()
                .filter(|s| s.name == "hoard_non_cacheable_total")
                .map(|s| (s.labels["reason"].clone(), s.value as u64))
                .collect();
            prop_assert_eq!(&read, &reasons);
        }
    }
}
