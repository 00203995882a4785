//! Text utilities for agents: counts, regex find and replace, slugs and
//! line diffs.
use regex::RegexBuilder;
use toolmesh_guest::prelude::*;

/// Largest compiled regex the tool accepts, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Deserialize, JsonSchema)]
struct CountArgs {
    /// The text to measure.
    text: String,
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Counts {
    /// Unicode scalar values.
    characters: usize,
    /// UTF-8 bytes.
    bytes: usize,
    /// Runs of non-whitespace.
    words: usize,
    /// Lines (a final line without a newline counts).
    lines: usize,
}

fn count(args: CountArgs) -> Result<Json<Counts>, ToolError> {
    let t = &args.text;
    Ok(Json(Counts {
        characters: t.chars().count(),
        bytes: t.len(),
        words: t.split_whitespace().count(),
        lines: t.lines().count(),
    }))
}

#[derive(Deserialize, JsonSchema)]
struct FindArgs {
    /// A regular expression (Rust `regex` syntax; linear-time, no backreferences).
    pattern: String,
    /// The text to search.
    text: String,
    /// Match without regard to case.
    #[serde(default)]
    case_insensitive: bool,
    /// Stop after this many matches.
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Match {
    /// The matched text.
    text: String,
    /// Byte offset where the match starts.
    start: usize,
    /// Byte offset just past the match.
    end: usize,
    /// Capture groups by index (1-based); `null` where a group did not take part.
    groups: Vec<Option<String>>,
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Matches {
    /// The matches, in order.
    matches: Vec<Match>,
    /// True when `limit` cut the list short.
    truncated: bool,
}

fn compile(pattern: &str, case_insensitive: bool) -> Result<regex::Regex, ToolError> {
    RegexBuilder::new(pattern)
        .case_insensitive(case_insensitive)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ToolError::invalid_arguments(format_args!("field `pattern`: {e}")))
}

fn regex_find(args: FindArgs) -> Result<Json<Matches>, ToolError> {
    let re = compile(&args.pattern, args.case_insensitive)?;
    let mut matches = Vec::new();
    let mut truncated = false;
    for caps in re.captures_iter(&args.text) {
        if matches.len() == args.limit {
            truncated = true;
            break;
        }
        let whole = caps.get(0).expect("group 0 always participates");
        matches.push(Match {
            text: whole.as_str().to_owned(),
            start: whole.start(),
            end: whole.end(),
            groups: caps.iter().skip(1).map(|g| g.map(|g| g.as_str().to_owned())).collect(),
        });
    }
    Ok(Json(Matches { matches, truncated }))
}

#[derive(Deserialize, JsonSchema)]
struct ReplaceArgs {
    /// A regular expression (Rust `regex` syntax).
    pattern: String,
    /// The replacement; `$1` or `${name}` insert capture groups.
    replacement: String,
    /// The text to edit.
    text: String,
    /// Match without regard to case.
    #[serde(default)]
    case_insensitive: bool,
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Replaced {
    /// The edited text.
    text: String,
    /// How many matches were replaced.
    replacements: usize,
}

fn regex_replace(args: ReplaceArgs) -> Result<Json<Replaced>, ToolError> {
    let re = compile(&args.pattern, args.case_insensitive)?;
    let replacements = re.find_iter(&args.text).count();
    let text = re.replace_all(&args.text, args.replacement.as_str()).into_owned();
    Ok(Json(Replaced { text, replacements }))
}

#[derive(Deserialize, JsonSchema)]
struct SlugArgs {
    /// The text to turn into a slug.
    text: String,
    /// What joins the words.
    #[serde(default = "default_separator")]
    separator: String,
}

fn default_separator() -> String {
    "-".into()
}

/// Lower-cases letters and digits (ASCII-folding common Latin accents) and
/// joins the runs between them with `separator`.
fn slug(text: &str, separator: &str) -> String {
    let mut words: Vec<String> = vec![String::new()];
    for c in text.chars().flat_map(fold_accent) {
        if c.is_alphanumeric() {
            words.last_mut().expect("never empty").extend(c.to_lowercase());
        } else if !words.last().expect("never empty").is_empty() {
            words.push(String::new());
        }
    }
    words.retain(|w| !w.is_empty());
    words.join(separator)
}

fn fold_accent(c: char) -> std::vec::IntoIter<char> {
    let folded: &str = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
        'ç' => "c",
        'Ç' => "C",
        'è' | 'é' | 'ê' | 'ë' => "e",
        'È' | 'É' | 'Ê' | 'Ë' => "E",
        'ì' | 'í' | 'î' | 'ï' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' => "I",
        'ñ' => "n",
        'Ñ' => "N",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
        'ù' | 'ú' | 'û' | 'ü' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
        'ý' | 'ÿ' => "y",
        'ß' => "ss",
        'æ' => "ae",
        'œ' => "oe",
        _ => return vec![c].into_iter(),
    };
    folded.chars().collect::<Vec<_>>().into_iter()
}

fn slugify(args: SlugArgs) -> Result<String, ToolError> {
    Ok(slug(&args.text, &args.separator))
}

#[derive(Deserialize, JsonSchema)]
struct DiffArgs {
    /// The original text.
    old: String,
    /// The changed text.
    new: String,
    /// Lines of unchanged context around each change.
    #[serde(default = "default_context")]
    context: usize,
}

fn default_context() -> usize {
    3
}

fn diff(args: DiffArgs) -> Result<String, ToolError> {
    let diff = similar::TextDiff::from_lines(&args.old, &args.new);
    let text = diff.unified_diff().context_radius(args.context).header("old", "new").to_string();
    Ok(text)
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new("count", "Counts characters, bytes, words and lines of a text.", count).read_only().idempotent(),
        Tool::new(
            "regex_find",
            "Finds the matches of a regular expression in a text, with offsets and capture groups.",
            regex_find,
        )
        .read_only()
        .idempotent(),
        Tool::new(
            "regex_replace",
            "Replaces every match of a regular expression in a text; `$1` and `${name}` insert groups.",
            regex_replace,
        )
        .read_only()
        .idempotent(),
        Tool::new("slugify", "Turns a title into a URL slug (`Hello, World!` → `hello-world`).", slugify)
            .read_only()
            .idempotent(),
        Tool::new("diff", "Shows the line differences between two texts as a unified diff.", diff)
            .read_only()
            .idempotent(),
    ]
}

toolmesh_guest::export_tools!(tools);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let Json(c) = count(CountArgs { text: "héllo wörld\nsecond line".into() }).unwrap();
        assert_eq!(c, Counts { characters: 23, bytes: 25, words: 4, lines: 2 });
    }

    #[test]
    fn finds_with_groups_and_limit() {
        let Json(m) = regex_find(FindArgs {
            pattern: r"(\w+)@(\w+)\.com".into(),
            text: "a@b.com, c@d.com, e@f.com".into(),
            case_insensitive: false,
            limit: 2,
        })
        .unwrap();
        assert_eq!(m.matches.len(), 2);
        assert!(m.truncated);
        assert_eq!(m.matches[1].text, "c@d.com");
        assert_eq!(m.matches[1].start, 9);
        assert_eq!(m.matches[1].groups, vec![Some("c".into()), Some("d".into())]);
    }

    #[test]
    fn bad_pattern_is_invalid_arguments() {
        let err = regex_find(FindArgs { pattern: "(".into(), text: String::new(), case_insensitive: false, limit: 1 })
            .unwrap_err();
        assert!(matches!(err, ToolError::InvalidArguments(m) if m.starts_with("field `pattern`")));
    }

    #[test]
    fn replaces_with_groups() {
        let Json(r) = regex_replace(ReplaceArgs {
            pattern: r"(\d+)-(\d+)".into(),
            replacement: "$2-$1".into(),
            text: "1-2 and 3-4".into(),
            case_insensitive: false,
        })
        .unwrap();
        assert_eq!(r, Replaced { text: "2-1 and 4-3".into(), replacements: 2 });
    }

    #[test]
    fn slugs() {
        assert_eq!(slug("Hello, World!", "-"), "hello-world");
        assert_eq!(slug("  Crème Brûlée — à la carte ", "_"), "creme_brulee_a_la_carte");
        assert_eq!(slug("!!!", "-"), "");
    }

    #[test]
    fn unified_diff() {
        let d = diff(DiffArgs { old: "a\nb\nc\n".into(), new: "a\nB\nc\n".into(), context: 1 }).unwrap();
        assert_eq!(d, "--- old\n+++ new\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
    }
}
