//! What the fuzz tests of outside input share: real texts, cut and with characters changed.

use proptest::prelude::*;

/// One of `texts` with up to five characters replaced by arbitrary ones and, half the time,
/// cut at an arbitrary place: inputs that get past a parser's first line and into its fields.
pub fn cut_and_changed(texts: Vec<String>) -> impl Strategy<Value = String> {
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<char>()), 0..6);
    (
        prop::sample::select(texts),
        edits,
        prop::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(text, edits, cut)| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, c) in edits {
                let at = at.index(chars.len());
                chars[at] = c;
            }
            if let Some(cut) = cut {
                chars.truncate(cut.index(chars.len() + 1));
            }
            chars.into_iter().collect()
        })
}
