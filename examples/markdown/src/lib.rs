//! Markdown for agents: render CommonMark (with tables, footnotes, task
//! lists and strikethrough) to HTML, and build tables of contents; a guide
//! to the syntax and examples of each extension as resources, and a prompt
//! that reviews a document's outline.
use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};
use toolmesh_guest::prelude::*;

fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES
}

#[derive(Deserialize, JsonSchema)]
struct HtmlArgs {
    /// The Markdown source.
    markdown: String,
    /// Pass raw HTML in the source through. Off by default: raw HTML is
    /// escaped so the output is safe to embed.
    #[serde(default)]
    allow_html: bool,
}

fn to_html(args: HtmlArgs) -> Result<String, ToolError> {
    let parser = Parser::new_ext(&args.markdown, options()).map(|event| match event {
        Event::Html(raw) | Event::InlineHtml(raw) if !args.allow_html => Event::Text(raw),
        other => other,
    });
    let mut out = String::with_capacity(args.markdown.len() * 3 / 2);
    html::push_html(&mut out, parser);
    Ok(out)
}

#[derive(Deserialize, JsonSchema)]
struct TocArgs {
    /// The Markdown source.
    markdown: String,
    /// Deepest heading level to include (1–6).
    #[serde(default = "default_depth")]
    max_level: u8,
}

fn default_depth() -> u8 {
    3
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Heading {
    /// 1 for `#`, 2 for `##`, …
    level: u8,
    /// The heading's text, without markup.
    text: String,
    /// A URL fragment for the heading, unique within the document.
    anchor: String,
}

#[derive(Serialize, JsonSchema, Debug, PartialEq)]
struct Toc {
    /// The headings in document order.
    headings: Vec<Heading>,
    /// The table of contents as a nested Markdown list of links.
    markdown: String,
}

fn level_number(level: HeadingLevel) -> u8 {
    match level {
        HeadingLevel::H1 => 1,
        HeadingLevel::H2 => 2,
        HeadingLevel::H3 => 3,
        HeadingLevel::H4 => 4,
        HeadingLevel::H5 => 5,
        HeadingLevel::H6 => 6,
    }
}

/// GitHub-style anchor: lower-case, spaces to `-`, punctuation dropped.
fn anchor_of(text: &str) -> String {
    text.trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn toc(args: TocArgs) -> Result<Json<Toc>, ToolError> {
    if !(1..=6).contains(&args.max_level) {
        return Err(ToolError::invalid_arguments("field `max_level`: must be between 1 and 6"));
    }
    let mut headings = Vec::new();
    let mut current: Option<(u8, String, Option<String>)> = None;
    for event in Parser::new_ext(&args.markdown, options()) {
        match event {
            Event::Start(Tag::Heading { level, id, .. }) => {
                current = Some((level_number(level), String::new(), id.map(|s| s.to_string())))
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some((_, text, _)) = current.as_mut() {
                    text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some((level, text, id)) = current.take() {
                    headings.push((level, text, id));
                }
            }
            _ => {}
        }
    }
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let headings: Vec<Heading> = headings
        .into_iter()
        .map(|(level, text, id)| {
            let base = id.unwrap_or_else(|| anchor_of(&text));
            let n = seen.entry(base.clone()).or_insert(0);
            let anchor = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
            *n += 1;
            Heading { level, text, anchor }
        })
        .filter(|h| h.level <= args.max_level)
        .collect();
    let top = headings.iter().map(|h| h.level).min().unwrap_or(1);
    let markdown = headings
        .iter()
        .map(|h| format!("{}- [{}](#{})\n", "  ".repeat(usize::from(h.level - top)), h.text, h.anchor))
        .collect();
    Ok(Json(Toc { headings, markdown }))
}

fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "to_html",
            "Renders Markdown (CommonMark with tables, footnotes, task lists, strikethrough) to HTML.",
            to_html,
        )
        .read_only()
        .idempotent(),
        Tool::new("toc", "Lists a Markdown document's headings with anchors, as data and as a Markdown list.", toc)
            .read_only()
            .idempotent(),
    ]
}

/// The extensions to CommonMark this package renders, with an example each.
const EXTENSIONS: &[(&str, &str)] = &[
    ("tables", "| Tool | Kind |\n|------|------|\n| toc | data |\n"),
    ("footnotes", "Rendered safely.[^1]\n\n[^1]: Raw HTML is escaped unless asked for.\n"),
    ("tasklists", "- [x] render\n- [ ] publish\n"),
    ("strikethrough", "~~old~~ new\n"),
];

fn guide() -> String {
    let mut out = String::from(
        "# Markdown guide\n\nCommonMark, plus these extensions (read `markdown://examples/{name}` for one):\n\n",
    );
    for (name, _) in EXTENSIONS {
        out.push_str(&format!("- {name}\n"));
    }
    out
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::new("markdown://guide", "guide", |_| Ok(Contents::text(guide())))
            .title("Markdown guide")
            .description("The Markdown `to_html` renders: CommonMark and its extensions.")
            .mime_type("text/markdown"),
        Resource::template("markdown://examples/{name}", "example", |read| {
            let name = read.var("name").unwrap_or_default();
            match EXTENSIONS.iter().find(|(n, _)| *n == name) {
                Some((_, example)) => Ok(Contents::text(*example)),
                None => Err(OfferError::not_found(format!("no extension `{name}`; see markdown://guide"))),
            }
        })
        .description("An example of one Markdown extension (tables, footnotes, tasklists, strikethrough).")
        .mime_type("text/markdown"),
    ]
}

fn prompts() -> Vec<Prompt> {
    vec![
        Prompt::new("review_outline", "Asks the model to review a document's outline (its headings).")
            .argument("markdown", "The Markdown document", true)
            .handler(|args| {
                let document = args.get("markdown").unwrap_or_default();
                let outline = toc(TocArgs { markdown: document.to_owned(), max_level: 3 })?.0.markdown;
                Ok(vec![
                    Message::user(Contents::text(document).mime_type("text/markdown").at("markdown://document")),
                    Message::user(format!(
                        "This is the document's outline:\n\n{outline}\nIs it well structured? Suggest better headings."
                    )),
                ])
            }),
    ]
}

toolmesh_guest::export_tools!(tools, resources = resources, prompts = prompts);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_and_escapes_raw_html() {
        let html = to_html(HtmlArgs {
            markdown: "| a | b |\n|---|---|\n| 1 | 2 |\n\n<script>x</script>\n".into(),
            allow_html: false,
        })
        .unwrap();
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<td>2</td>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
    }

    #[test]
    fn passes_raw_html_when_allowed() {
        let html = to_html(HtmlArgs { markdown: "<b>x</b>".into(), allow_html: true }).unwrap();
        assert!(html.contains("<b>x</b>"), "{html}");
    }

    #[test]
    fn builds_a_nested_toc_with_unique_anchors() {
        let Json(t) = toc(TocArgs {
            markdown: "# Intro\n## Set up `tool`\n## Set up `tool`\n#### Deep\n# End {#fin}\n".into(),
            max_level: 3,
        })
        .unwrap();
        let anchors: Vec<_> = t.headings.iter().map(|h| h.anchor.as_str()).collect();
        assert_eq!(anchors, ["intro", "set-up-tool", "set-up-tool-1", "fin"]);
        assert_eq!(
            t.markdown,
            "- [Intro](#intro)\n  - [Set up tool](#set-up-tool)\n  - [Set up tool](#set-up-tool-1)\n- [End](#fin)\n"
        );
    }

    #[test]
    fn rejects_a_level_out_of_range() {
        assert!(matches!(toc(TocArgs { markdown: String::new(), max_level: 9 }), Err(ToolError::InvalidArguments(_))));
    }
}
