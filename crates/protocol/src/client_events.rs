//! Events a client counts without a server: invocations it never sends (non-cacheable ones),
//! compiles it ran itself because the cache path failed (when no server may be there to
//! tell), and hits it served from its own cache directory without a round trip. Each is one short line appended to a file in the cache directory; the server folds
//! the file into the [`Stats`] it reports, and `ZeroStats` empties it.

use crate::Stats;

/// One counted client-side event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// The invocation cannot be cached, for the named reason.
    NonCacheable(String),
    /// The client compiled locally because the cache path failed, for the named cause.
    LocalFallback(String),
    /// A fault on the cache path that did not need a local compile (a failed put).
    CacheError(String),
    /// A hit the client extracted from its own cache directory (protocol v2), in `language`,
    /// saving the stored compile time.
    LocalHit {
        /// The language name (`c`, `c++`, `rust`).
        language: String,
        /// The stored compile time, in milliseconds.
        saved_ms: u64,
    },
    /// A miss the client counted without a lookup (protocol v2, a depend-mode compile that
    /// learns its key only by compiling), in `language`.
    LocalMiss {
        /// The language name.
        language: String,
    },
}

/// A name as a line may carry it: `[a-z0-9_+]`, at most 64 characters, so a line can never be
/// split or forged by what it carries (`+` keeps `c++` readable).
fn line_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '+' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

impl ClientEvent {
    /// The event as one line (with its newline). Names are reduced to `[a-z0-9_]` so a line
    /// can never be split or forged by what it carries.
    pub fn to_line(&self) -> String {
        let (kind, name) = match self {
            Self::NonCacheable(n) => ("non_cacheable", n),
            Self::LocalFallback(n) => ("local_fallback", n),
            Self::CacheError(n) => ("cache_error", n),
            Self::LocalHit { language, saved_ms } => {
                return format!("local_hit {} {saved_ms}\n", line_safe(language));
            }
            Self::LocalMiss { language } => ("local_miss", language),
        };
        format!("{kind} {}\n", line_safe(name))
    }

    /// Parses one line; `None` for anything not written by [`ClientEvent::to_line`].
    pub fn from_line(line: &str) -> Option<Self> {
        let (kind, name) = line.trim_end().split_once(' ')?;
        let name = name.to_owned();
        match kind {
            "non_cacheable" => Some(Self::NonCacheable(name)),
            "local_fallback" => Some(Self::LocalFallback(name)),
            "cache_error" => Some(Self::CacheError(name)),
            "local_miss" => Some(Self::LocalMiss { language: name }),
            "local_hit" => {
                let (language, saved_ms) = name.split_once(' ')?;
                Some(Self::LocalHit {
                    language: language.to_owned(),
                    saved_ms: saved_ms.parse().ok()?,
                })
            }
            _ => None,
        }
    }
}

impl Stats {
    /// Adds the events recorded in `log` (the client events file's contents).
    pub fn add_client_events(&mut self, log: &str) {
        for event in log.lines().filter_map(ClientEvent::from_line) {
            match event {
                ClientEvent::NonCacheable(reason) => {
                    self.non_cacheable += 1;
                    *self.non_cacheable_reasons.entry(reason).or_default() += 1;
                }
                ClientEvent::LocalFallback(cause) => {
                    self.local_fallbacks += 1;
                    *self.local_fallback_causes.entry(cause).or_default() += 1;
                }
                ClientEvent::CacheError(_) => self.cache_errors += 1,
                ClientEvent::LocalMiss { language } => {
                    // Served under v2 without a request on the wire: still v2's traffic.
                    *self
                        .requests_by_protocol
                        .entry(crate::PROTOCOL_V2.to_string())
                        .or_default() += 1;
                    self.cache_misses += 1;
                    *self.misses_by_language.entry(language).or_default() += 1;
                    *self
                        .misses_by_protocol
                        .entry(crate::PROTOCOL_V2.to_string())
                        .or_default() += 1;
                }
                ClientEvent::LocalHit { language, saved_ms } => {
                    *self
                        .requests_by_protocol
                        .entry(crate::PROTOCOL_V2.to_string())
                        .or_default() += 1;
                    self.cache_hits += 1;
                    *self.hits_by_language.entry(language).or_default() += 1;
                    *self
                        .hits_by_protocol
                        .entry(crate::PROTOCOL_V2.to_string())
                        .or_default() += 1;
                    self.time_saved_ms = self.time_saved_ms.saturating_add(saved_ms);
                    self.transfers.local += 1;
                    // The local tier served it, as it would have through the server.
                    if let Some(local) = self.tiers.iter_mut().find(|t| t.name == "local") {
                        local.hits += 1;
                    }
                }
            }
        }
    }
}

/// File name of the marker a server keeps in its cache directory while clients may serve hits
/// from its local store themselves and count them as [`ClientEvent::LocalHit`]s: a server
/// that speaks v2 writes it at start, one pinned to v1 removes it, and one from before it
/// existed never writes it, so its clients ask it for every hit as before.
pub const LOCAL_HITS_FILE: &str = "local-hits";

/// What a server writes in [`LOCAL_HITS_FILE`]: its mount namespace (the target of
/// `/proc/self/ns/mnt`), so that only a client that sees the same filesystem tree serves
/// itself; one in a container reads hits inline, as the server cannot see its paths either.
pub fn local_hits_marker(mount_namespace: &str) -> String {
    format!("v2 {mount_namespace}\n")
}

/// This process's mount namespace, as [`local_hits_marker`] names it; `None` without
/// `/proc`.
pub fn mount_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/mnt")
        .ok()
        .map(|target| target.to_string_lossy().into_owned())
}

/// File name of the client events log inside the cache directory.
pub const CLIENT_EVENTS_FILE: &str = "client-events.log";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn events_round_trip_through_their_line(
            name in "[a-z0-9_+]{1,40}",
            kind in 0..5u8,
            saved_ms: u64,
        ) {
            let event = match kind {
                0 => ClientEvent::NonCacheable(name),
                1 => ClientEvent::LocalFallback(name),
                2 => ClientEvent::CacheError(name),
                3 => ClientEvent::LocalMiss { language: name },
                _ => ClientEvent::LocalHit { language: name, saved_ms },
            };
            prop_assert_eq!(ClientEvent::from_line(&event.to_line()), Some(event));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".*") {
            let mut stats = Stats::default();
            stats.add_client_events(&text);
        }
    }

    #[test]
    fn a_name_cannot_inject_a_second_line() {
        let line = ClientEvent::NonCacheable("x\nlocal_fallback y".into()).to_line();
        assert_eq!(line.matches('\n').count(), 1);
        let mut stats = Stats::default();
        stats.add_client_events(&line);
        assert_eq!((stats.non_cacheable, stats.local_fallbacks), (1, 0));
    }

    #[test]
    fn a_local_hit_counts_as_a_v2_hit_of_the_local_tier() {
        let mut stats = Stats {
            tiers: vec![crate::TierStats {
                name: "local".into(),
                ..Default::default()
            }],
            ..Stats::default()
        };
        stats
            .add_client_events("local_hit c++ 40\nlocal_hit c 2\nlocal_hit c x\nlocal_miss rust\n");
        assert_eq!(stats.cache_misses, 1);
        assert_eq!(stats.misses_by_protocol["2"], 1);
        assert_eq!(stats.requests_by_protocol["2"], 3);
        assert_eq!(stats.cache_hits, 2);
        assert_eq!(stats.hits_by_language["c++"], 1);
        assert_eq!(stats.hits_by_protocol["2"], 2);
        assert_eq!(stats.time_saved_ms, 42);
        assert_eq!(stats.transfers.local, 2);
        assert_eq!(stats.tiers[0].hits, 2);
    }

    #[test]
    fn events_are_counted_by_kind_and_name() {
        let mut stats = Stats::default();
        stats.add_client_events(
            "non_cacheable linking\nnon_cacheable linking\nlocal_fallback connect\ngarbage\n",
        );
        assert_eq!(stats.non_cacheable, 2);
        assert_eq!(stats.non_cacheable_reasons["linking"], 2);
        assert_eq!(stats.local_fallbacks, 1);
        assert_eq!(stats.local_fallback_causes["connect"], 1);
    }
}
