//! Ranked search over packages (and, through [`score_fields`], over single
//! tools): every word of the query must appear in a
//! package's name, description or tools; names weigh most (pure).

use toolmesh_registry::api::CatalogEntry;

/// What a search looks at in one item, in lower case: its name, the last
/// part of the name, its description, and the names and descriptions of
/// what it holds (a package's tools).
pub struct Fields {
    /// The full name.
    pub name: String,
    /// The name's last part (`slugify` of `examples.text.slugify`).
    pub short: String,
    /// The description.
    pub description: String,
    /// Names and descriptions of its parts.
    pub parts: Vec<(String, String)>,
}

/// How well `entry` matches the lower-case `words`; `None` when a word
/// appears nowhere.
pub fn score(entry: &CatalogEntry, words: &[String]) -> Option<u32> {
    let name = entry.name.to_lowercase();
    let fields = Fields {
        short: name.rsplit('/').next().unwrap_or(&name).to_owned(),
        description: entry.description.as_deref().unwrap_or_default().to_lowercase(),
        parts: entry
            .tools
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                let text = |key: &str| t[key].as_str().unwrap_or_default().to_lowercase();
                (text("name"), text("description"))
            })
            .collect(),
        name,
    };
    score_fields(&fields, words)
}

/// How well `fields` match the lower-case `words`, names weighing most;
/// `None` when a word appears nowhere.
pub fn score_fields(fields: &Fields, words: &[String]) -> Option<u32> {
    let Fields { name, short, description, parts: tools } = fields;
    let mut total = 0;
    for word in words {
        let mut best = 0;
        if short == word {
            best = 40;
        } else if name.contains(word.as_str()) {
            best = 20;
        }
        if tools.iter().any(|(tool, _)| tool == word) {
            best = best.max(15);
        } else if tools.iter().any(|(tool, _)| tool.contains(word.as_str())) {
            best = best.max(10);
        }
        if description.contains(word.as_str()) {
            best = best.max(5);
        }
        if best == 0 && tools.iter().any(|(_, text)| text.contains(word.as_str())) {
            best = 2;
        }
        if best == 0 {
            return None;
        }
        total += best;
    }
    Some(total)
}

/// The words of `query`, lower case (at most 16, each cut to 64 characters).
pub fn words(query: &str) -> Vec<String> {
    query.split_whitespace().take(16).map(|w| w.chars().take(64).collect::<String>().to_lowercase()).collect()
}

/// `entries` that match `query`, best first (by name when equal); all of
/// them, by name, when the query is empty.
pub fn rank<'a>(entries: &'a [CatalogEntry], query: &str) -> Vec<&'a CatalogEntry> {
    let words = words(query);
    let mut hits: Vec<(u32, &CatalogEntry)> = entries
        .iter()
        .filter_map(|e| if words.is_empty() { Some((0, e)) } else { score(e, &words).map(|s| (s, e)) })
        .collect();
    hits.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.name.cmp(&y.name)));
    hits.into_iter().map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(name: &str, description: &str, tools: &[(&str, &str)]) -> CatalogEntry {
        CatalogEntry {
            name: name.into(),
            version: "1.0.0".into(),
            digest: String::new(),
            description: Some(description.into()),
            publisher: None,
            source: None,
            tools: tools.iter().map(|(n, d)| json!({"name": n, "description": d})).collect(),
            permissions: Default::default(),
            offer: serde_json::Value::Null,
        }
    }

    #[test]
    fn names_rank_above_descriptions_and_every_word_must_match() {
        let entries = vec![
            entry("examples/markdown", "Markdown to HTML", &[("to_html", "Render markdown")]),
            entry("examples/text", "Text utilities: slugs for markdown titles", &[("slugify", "Make a slug")]),
            entry("examples/fetch", "Fetch a URL", &[("get", "Fetch a page as text")]),
        ];
        let names = |q: &str| rank(&entries, q).iter().map(|e| e.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names("markdown"), ["examples/markdown", "examples/text"]);
        assert_eq!(names("slug"), ["examples/text"]);
        assert_eq!(names("TEXT"), ["examples/text", "examples/fetch"]);
        assert_eq!(names("text fetch"), ["examples/fetch"]);
        assert!(names("nothing-like-this").is_empty());
        assert!(names(&"x".repeat(100)).is_empty(), "a long word matches nothing, not everything");
        assert_eq!(names("  "), ["examples/fetch", "examples/markdown", "examples/text"]);
    }
}
