//! `hoard --report JOURNAL --format json`: the summary as one JSON object, for a program to
//! read: the totals at the top level (`compiles`, `hits`, `hit_rate`, `saved_ms`, ...), then
//! `groups`, `slowest_misses`, the reason tallies and the `timeline`, and `journal`, the
//! file it was read from.

use std::path::Path;

use hoard_client::journal::Summary;

/// Renders `summary` as pretty-printed JSON, ending in a newline.
pub(super) fn render(summary: &Summary, journal: &Path) -> Result<String, serde_json::Error> {
    let mut value = serde_json::to_value(summary)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("journal".to_owned(), journal.display().to_string().into());
    }
    let mut text = serde_json::to_string_pretty(&value)?;
    text.push('\n');
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hoard_client::journal::{JournalLine, Outcome, summary_of};

    #[test]
    fn the_json_report_carries_totals_groups_misses_and_the_timeline() {
        let line = JournalLine {
            time: 5.0,
            cwd: "/w".into(),
            output: Some("/w/t/debug/deps/libserde-1.rlib".into()),
            crate_name: Some("serde".into()),
            language: Some("rust".into()),
            result: Outcome::Miss,
            reason: None,
            miss_reason: Some("first compile of this output".into()),
            saved_ms: None,
            direct: None,
            tier: None,
            signer: None,
            transfer: None,
            hashing_ms: 1.0,
            lookup_ms: 1.0,
            compile_ms: 40.0,
            total_ms: 45.0,
        };
        let text = render(&summary_of(&[line]), Path::new("b.jsonl")).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["journal"], "b.jsonl");
        assert_eq!(json["misses"], 1);
        assert_eq!(json["hit_rate"], 0.0);
        assert_eq!(json["groups"][0]["kind"], "crate");
        assert_eq!(json["groups"][0]["name"], "serde");
        assert_eq!(json["groups"][0]["misses"], 1);
        assert_eq!(
            json["slowest_misses"][0]["reason"],
            "first compile of this output"
        );
        assert_eq!(json["timeline"][0]["result"], "miss");
        assert_eq!(json["timeline"][0]["what"], "serde");
    }
}
