//! The Prometheus exposition of a [`Gathered`], written by `prometheus-client` through a
//! [`Collector`]: every metric is a constant read from the gathered figures, so a scrape
//! costs its encoding and nothing is kept between scrapes. Every metric is listed, with its
//! meaning, in docs/Metrics.md; keep the two in step.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

use hoard_protocol::TierStats;

use super::{Gathered, TierWatch};
use crate::stats::{Listener, PeerRefusal};

/// The text format a scrape is answered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// OpenMetrics 1.0 text, for a scraper that asks for it (Prometheus does).
    OpenMetrics,
    /// The classic Prometheus text format 0.0.4, for everything else (`curl`, older agents).
    PrometheusText,
}

impl Format {
    /// The format a request's `Accept` header asks for.
    pub(crate) fn accepted(accept: Option<&str>) -> Format {
        if accept.is_some_and(|a| a.contains("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }

    /// Its `Content-Type`.
    pub(crate) fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::PrometheusText => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The exposition of `gathered` in `format`, every name prefixed `hoard_`.
pub(crate) fn render(gathered: Gathered, format: Format) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("hoard");
    registry.register_collector(Box::new(Exposition(gathered)));
    let mut text = String::new();
    match format {
        Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut text, &registry)?,
        Format::PrometheusText => {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
        }
    }
    Ok(text)
}

/// One scrape's figures, as a collector the registry encodes.
#[derive(Debug)]
struct Exposition(Gathered);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let g = &self.0;
        server(g, &mut encoder)?;
        cache(g, &mut encoder)?;
        tiers(g, &mut encoder)?;
        connections(g, &mut encoder)
    }
}

/// A counter without labels.
fn counter<N: prometheus_client::encoding::EncodeCounterValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

/// A gauge without labels.
fn gauge<N: prometheus_client::encoding::EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    (name, help, unit): (&str, &str, Option<&Unit>),
    value: N,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, unit, MetricType::Gauge)?;
    ConstGauge::new(value).encode(metric)
}

/// A metric of `kind` (counter or gauge) with one sample per label set.
fn family<const L: usize>(
    encoder: &mut DescriptorEncoder,
    (name, help, kind): (&str, &str, MetricType),
    samples: impl IntoIterator<Item = ([(&'static str, String); L], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        let sample = metric.encode_family(&labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(value).encode(sample)?,
            _ => ConstGauge::new(value).encode(sample)?,
        }
    }
    Ok(())
}

/// `by_label` with whatever of `total` it does not account for added under `unknown`, so
/// the samples always add up to the total (an older server's saved figures may not split
/// every count).
fn adding_up_to(by_label: &BTreeMap<String, u64>, total: u64) -> BTreeMap<String, u64> {
    let mut samples = by_label.clone();
    let split: u64 = by_label.values().sum();
    if total > split {
        *samples.entry("unknown".to_owned()).or_default() += total - split;
    }
    samples
}

/// One sample per entry of `map`, labelled `label`.
fn labelled(
    label: &'static str,
    map: BTreeMap<String, u64>,
) -> impl Iterator<Item = ([(&'static str, String); 1], u64)> {
    map.into_iter().map(move |(value, n)| ([(label, value)], n))
}

fn server(g: &Gathered, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let info = Info::new([
        ("version", g.version.to_owned()),
        ("protocol_min", g.protocols.0.to_string()),
        ("protocol_max", g.protocols.1.to_string()),
    ]);
    let metric = encoder.encode_descriptor(
        "server",
        "The server's version and the protocol versions it serves",
        None,
        MetricType::Info,
    )?;
    info.encode(metric)?;
    gauge(
        encoder,
        (
            "server_start_time",
            "When the server started, in seconds since the Unix epoch",
            Some(&Unit::Seconds),
        ),
        g.started_unix_seconds,
    )
}

/// A figure of a tier's counters.
type TierFigure = fn(&TierStats) -> u64;

/// A figure of a tier's state.
type TierState = fn(&TierWatch) -> u64;

/// A counter split by a label, with the total its samples must add up to.
type Split<'a> = (
    &'a str,
    &'a str,
    &'static str,
    &'a BTreeMap<String, u64>,
    u64,
);

/// A tier counter with a `result` label: name, help, and each result's figure.
type TierResults = (&'static str, &'static str, [(&'static str, TierFigure); 2]);

const TIER_RESULTS: [TierResults; 2] = [
    (
        "tier_lookups",
        "Lookups per storage tier (local first), by result: hit or miss",
        [("hit", |t| t.hits), ("miss", |t| t.misses)],
    ),
    (
        "tier_writes",
        "Writes per storage tier, by result: stored, or skipped (too large, queue full, \
         breaker open, read-only)",
        [("stored", |t| t.writes), ("skipped", |t| t.skipped)],
    ),
];

const TIER_COUNTERS: [(&str, &str, TierFigure); 4] = [
    (
        "tier_errors",
        "Failed operations per tier, and entries it returned that were refused",
        |t| t.errors,
    ),
    (
        "tier_timeouts",
        "Operations per tier that ran out of time",
        |t| t.timeouts,
    ),
    (
        "tier_prefetched",
        "Entries read ahead from a remote tier into the local store",
        |t| t.prefetched,
    ),
    (
        "tier_untrusted",
        "Entries from a remote tier refused because no trusted key signed them",
        |t| t.untrusted,
    ),
];

const TIER_STATES: [(&str, &str, TierState); 3] = [
    (
        "tier_healthy",
        "1 while a tier is called (its breaker closed), 0 while it is failing",
        |t| u64::from(t.healthy()),
    ),
    (
        "tier_retry_in_seconds",
        "Seconds until a failing tier is probed again (0 unless its breaker is open)",
        |t| t.retry_in_secs.unwrap_or(0),
    ),
    (
        "tier_read_only",
        "1 for a tier never written (configured so, or its credentials refused a write)",
        |t| u64::from(t.counters.read_only),
    ),
];

fn cache(g: &Gathered, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let s = &g.stats;
    let splits: [Split; 4] = [
        (
            "cache_hits",
            "Compiles served from the cache, by language (as hoard --show-stats counts them)",
            "language",
            &s.hits_by_language,
            s.cache_hits,
        ),
        (
            "cache_misses",
            "Cacheable compiles not found in the cache, by language",
            "language",
            &s.misses_by_language,
            s.cache_misses,
        ),
        (
            "non_cacheable",
            "Invocations that cannot be cached, by reason",
            "reason",
            &s.non_cacheable_reasons,
            s.non_cacheable,
        ),
        (
            "local_fallbacks",
            "Compiles a client ran itself because the cache path failed, by cause",
            "cause",
            &s.local_fallback_causes,
            s.local_fallbacks,
        ),
    ];
    for (name, help, label, by_label, total) in splits {
        let samples = labelled(label, adding_up_to(by_label, total));
        family(encoder, (name, help, MetricType::Counter), samples)?;
    }
    let counters = [
        (
            "cache_errors",
            "Faults on the cache path: storage errors, refused requests, failed puts",
            s.cache_errors,
        ),
        ("cache_writes", "Entries stored", s.cache_writes),
        (
            "cache_corrupt_entries",
            "Entries found damaged, removed and answered as misses",
            s.corrupt_entries,
        ),
    ];
    for (name, help, value) in counters {
        counter(encoder, (name, help, None), value)?;
    }
    traffic(g, encoder)?;
    let gauges = [
        (
            "cache_size",
            "Bytes held by the local store",
            Some(&Unit::Bytes),
            s.cache_size_bytes,
        ),
        (
            "cache_limit",
            "The local store's size limit",
            Some(&Unit::Bytes),
            s.cache_max_bytes,
        ),
        (
            "cache_entries",
            "Entries held by the local store",
            None,
            g.cache_entries,
        ),
    ];
    for (name, help, unit, value) in gauges {
        gauge(encoder, (name, help, unit), value)?;
    }
    Ok(())
}

/// What went over the wire and what it saved.
fn traffic(g: &Gathered, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let s = &g.stats;
    family(
        encoder,
        (
            "requests",
            "Cache requests by protocol version (a client's own local hit or miss counts as v2)",
            MetricType::Counter,
        ),
        labelled("protocol", s.requests_by_protocol.clone()),
    )?;
    let ways = [
        ("shared_fs", s.transfers.shared_fs),
        ("inline", s.transfers.inline),
        ("local", s.transfers.local),
    ];
    family(
        encoder,
        (
            "transfers",
            "Hits and puts by how the entry travelled: shared_fs, inline, local",
            MetricType::Counter,
        ),
        ways.map(|(way, n)| ([("way", way.to_owned())], n)),
    )?;
    counter(
        encoder,
        (
            "time_saved",
            "The stored compile times of every hit: compiler time the cache saved",
            Some(&Unit::Seconds),
        ),
        Duration::from_millis(s.time_saved_ms).as_secs_f64(),
    )
}

fn tiers(g: &Gathered, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let tier = |t: &TierWatch| ("tier", t.counters.name.clone());
    for (name, help, results) in TIER_RESULTS {
        let samples = g.tiers.iter().flat_map(|t| {
            results.map(|(result, figure)| {
                (
                    [tier(t), ("result", result.to_owned())],
                    figure(&t.counters),
                )
            })
        });
        family(encoder, (name, help, MetricType::Counter), samples)?;
    }
    for (name, help, figure) in TIER_COUNTERS {
        let samples = g.tiers.iter().map(|t| ([tier(t)], figure(&t.counters)));
        family(encoder, (name, help, MetricType::Counter), samples)?;
    }
    for (name, help, figure) in TIER_STATES {
        let samples = g.tiers.iter().map(|t| ([tier(t)], figure(t)));
        family(encoder, (name, help, MetricType::Gauge), samples)?;
    }
    let mut metric = encoder.encode_descriptor(
        "tier_operation_duration",
        "How long a remote tier's gets and puts took since the server started (a timeout \
         counts at its deadline)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for t in &g.latencies {
        let labels = [("tier", t.tier.clone()), ("op", t.op.to_owned())];
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(
                t.latency.sum_seconds,
                t.latency.count,
                &t.latency.buckets,
                None,
            )?;
    }
    Ok(())
}

fn connections(g: &Gathered, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    let c = &g.connections;
    let per_listener = |figures: [u64; Listener::ALL.len()]| {
        Listener::ALL
            .into_iter()
            .map(move |l| ([("listener", l.name().to_owned())], figures[l as usize]))
    };
    family(
        encoder,
        (
            "connections_accepted",
            "Client connections taken into service since the server started, by listener",
            MetricType::Counter,
        ),
        per_listener(c.accepted),
    )?;
    family(
        encoder,
        (
            "connections_open",
            "Client connections being served now, by listener",
            MetricType::Gauge,
        ),
        per_listener(c.open),
    )?;
    family(
        encoder,
        (
            "peers_refused",
            "Peers sent away before any request was served, since the server started, by reason",
            MetricType::Counter,
        ),
        PeerRefusal::ALL
            .into_iter()
            .map(|r| ([("reason", r.name().to_owned())], c.refused[r as usize])),
    )
}

#[cfg(test)]
mod tests;
