//! Placeholder: filled in by the trust-boundary work (issue 16).
