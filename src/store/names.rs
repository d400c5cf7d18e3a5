//! File and folder names made from user text (class names, layer names).

/// `s` as part of a file or folder name: every character that is not a letter or a digit
/// becomes `_`, `_` at either end is dropped and at most 60 characters are kept
/// (`"scuba diver"` → `scuba_diver`, `"layer1.0.relu"` → `layer1_0_relu`). Letters of any
/// script are kept, so names stay readable; different texts can give the same slug.
pub fn slug(s: &str) -> String {
    let s: String = s
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { '_' })
        .collect();
    s.trim_matches('_').chars().take(60).collect()
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs_keep_letters_and_digits_only() {
        assert_eq!(slug("scuba diver"), "scuba_diver");
        assert_eq!(slug("layer1.0.relu"), "layer1_0_relu");
        assert_eq!(slug("  \"Tench\", fish/"), "Tench___fish");
        assert_eq!(slug("Ärger"), "Ärger");
        assert_eq!(slug(&"x".repeat(100)).len(), 60);
        assert_eq!(slug("..."), "");
    }
}
