//! `capdiag rules` and `capdiag explain`: the rules and their pages.

use super::{EXIT_ERROR, print_text, report_error};

/// `capdiag rules`.
pub fn rules() -> u8 {
    let mut t = crate::output::table::table(&["rule", "severity", "what it detects"]);
    for r in crate::rules::RULES.iter().map(|e| e.info) {
        t.add_row(vec![r.id, r.severity.as_str(), r.title]);
    }
    print_text(&format!(
        "{t}\n`capdiag explain ID` prints a rule's page.\n"
    ))
}

/// `capdiag explain ID`.
pub fn explain(id: &str) -> u8 {
    match crate::rules::RULES
        .iter()
        .map(|e| e.info)
        .find(|r| r.id == id)
    {
        Some(r) => print_text(r.doc),
        None => {
            let known: Vec<&str> = crate::rules::RULES.iter().map(|e| e.info.id).collect();
            report_error(
                "explain",
                &format!("unknown rule '{id}' (rules: {})", known.join(", ")),
            );
            EXIT_ERROR
        }
    }
}
