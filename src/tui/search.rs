//! Fuzzy search over register names and numbers, field names, device ids and names, and
//! driver names (fuzzy-matcher's skim algorithm, smart case).

use fuzzy_matcher::skim::SkimMatcherV2;
use fuzzy_matcher::FuzzyMatcher;

use super::model::SearchItem;

/// At most this many hits are kept (the best first).
pub const MAX_HITS: usize = 200;

/// Indices of the items matching `pattern`, best first (ties: shorter text first, then
/// the index order). An empty pattern matches nothing.
pub fn search(items: &[SearchItem], pattern: &str) -> Vec<usize> {
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return Vec::new();
    }
    let matcher = SkimMatcherV2::default().smart_case();
    let mut hits: Vec<(i64, usize, usize)> = items
        .iter()
        .enumerate()
        .filter_map(|(i, it)| {
            matcher
                .fuzzy_match(&it.text, pattern)
                .map(|s| (s, it.text.len(), i))
        })
        .collect();
    hits.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    hits.truncate(MAX_HITS);
    hits.into_iter().map(|h| h.2).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::model::{Node, Target};

    fn item(text: &str) -> SearchItem {
        SearchItem {
            text: text.into(),
            target: Target::Nodes(vec![Node::MsrSection]),
        }
    }

    #[test]
    fn best_match_first() {
        let items = vec![
            item("IA32_MISC_ENABLE 0x1a0"),
            item("MSR_IA32_POWER_CTL 0x1fc"),
            item("MSR_IA32_POWER_CTL.C1E_PROMOTION"),
            item("0000:00:1f.2 8086:3b29 [ahci]"),
        ];
        assert_eq!(search(&items, "power")[0], 1);
        assert_eq!(search(&items, "1fc")[0], 1);
        assert_eq!(search(&items, "c1e")[0], 2);
        assert_eq!(search(&items, "ahci")[0], 3);
        assert!(search(&items, "zzzz").is_empty());
        assert!(search(&items, "  ").is_empty());
    }
}
