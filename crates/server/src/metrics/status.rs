//! The status page: the figures of a [`Gathered`] as one JSON object, for a person or a
//! script that wants the state of a gateway without a Prometheus server. Its fields are
//! listed in docs/Metrics.md.

use serde_json::{Value, json};

use super::Gathered;
use crate::stats::{Listener, PeerRefusal};

/// The status page of `g`.
pub(crate) fn render(g: &Gathered) -> Value {
    let s = &g.stats;
    let tiers: Vec<Value> = g
        .tiers
        .iter()
        .map(|t| {
            let c = &t.counters;
            json!({
                "name": c.name,
                "kind": t.kind,
                "state": t.state_words(),
                "breaker": c.state,
                "retry_in_seconds": t.retry_in_secs,
                "read_only": c.read_only,
                "hits": c.hits,
                "misses": c.misses,
                "writes": c.writes,
                "errors": c.errors,
                "timeouts": c.timeouts,
                "skipped": c.skipped,
                "prefetched": c.prefetched,
                "untrusted": c.untrusted,
            })
        })
        .collect();
    let per_listener = |figures: [u64; Listener::ALL.len()]| -> serde_json::Map<String, Value> {
        Listener::ALL
            .into_iter()
            .map(|l| (l.name().to_owned(), figures[l as usize].into()))
            .collect()
    };
    let refused: serde_json::Map<String, Value> = PeerRefusal::ALL
        .into_iter()
        .map(|r| {
            (
                r.name().to_owned(),
                g.connections.refused[r as usize].into(),
            )
        })
        .collect();
    json!({
        "version": g.version,
        "protocols": (g.protocols.0..=g.protocols.1).collect::<Vec<u32>>(),
        "uptime_seconds": g.uptime.as_secs(),
        "cache": {
            "size_bytes": s.cache_size_bytes,
            "limit_bytes": s.cache_max_bytes,
            "entries": g.cache_entries,
        },
        "hits": s.cache_hits,
        "misses": s.cache_misses,
        "errors": s.cache_errors,
        "writes": s.cache_writes,
        "tiers": tiers,
        "connections": {
            "accepted": per_listener(g.connections.accepted),
            "open": per_listener(g.connections.open),
            "refused": refused,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::sample;

    #[test]
    fn the_status_page_carries_the_gathered_figures_and_tier_states_in_words() {
        let status = render(&sample::gathered());
        assert_eq!(status["protocols"], json!([1, 2]));
        assert_eq!(status["uptime_seconds"], 90);
        assert_eq!(
            status["cache"],
            json!({"size_bytes": 4096, "limit_bytes": 1u64 << 30, "entries": 4})
        );
        assert_eq!(
            (&status["hits"], &status["misses"], &status["errors"]),
            (&json!(5), &json!(2), &json!(1))
        );
        assert_eq!(status["tiers"][0]["state"], "healthy");
        assert_eq!(status["tiers"][0]["kind"], "disk");
        assert_eq!(
            status["tiers"][1]["state"],
            "failing, retry in 12 s, read-only"
        );
        assert_eq!(status["tiers"][1]["retry_in_seconds"], 12);
        assert_eq!(status["tiers"][1]["hits"], 3);
        assert_eq!(status["connections"]["accepted"]["unix"], 9);
        assert_eq!(status["connections"]["open"]["tcp"], 1);
        assert_eq!(status["connections"]["refused"]["wrong_token"], 2);
        assert_eq!(status["connections"]["refused"]["connection_cap"], 0);
    }
}
