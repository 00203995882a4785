//! URI templates (RFC 6570) as resource templates use them: parsed once,
//! then matched against the URIs clients read, giving the variables'
//! values.
//!
//! Matching is the reverse of expansion, which RFC 6570 leaves open; this
//! takes the common reading. `{var}` matches one or more characters other
//! than `/`, `?` and `#`; `{+var}` matches anything up to the next
//! literal; `{#var}`, `{/var}`, `{.var}`, `{;var}`, `{?var}` and `{&var}`
//! match their prefix and value, or nothing.

/// Why a template does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` without its `}`, or a `}` without its `{`.
    #[error("unbalanced braces")]
    Unbalanced,
    /// An expression without a variable name, or one with characters a
    /// name may not have.
    #[error("bad variable name {0:?}")]
    BadName(String),
}

/// One part of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    /// Text matched as is.
    Literal(String),
    /// A variable: its operator (`'\0'` for none) and names.
    Expression(char, Vec<String>),
}

/// A parsed URI template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriTemplate {
    parts: Vec<Part>,
}

impl UriTemplate {
    /// Parses `template`.
    pub fn parse(template: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateError::Unbalanced),
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Literal(rest[..i].to_owned()));
                    }
                    let end = rest[i..].find('}').ok_or(TemplateError::Unbalanced)? + i;
                    let inner = &rest[i + 1..end];
                    if inner.contains('{') {
                        return Err(TemplateError::Unbalanced);
                    }
                    let (operator, names) = match inner.chars().next() {
                        Some(c @ ('+' | '#' | '/' | '.' | ';' | '?' | '&')) => (c, &inner[1..]),
                        _ => ('\0', inner),
                    };
                    let names: Vec<String> = names
                        .split(',')
                        .map(|n| n.trim_end_matches('*').split(':').next().unwrap_or_default().to_owned())
                        .collect();
                    if let Some(bad) = names.iter().find(|n| {
                        n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '%'))
                    }) {
                        return Err(TemplateError::BadName(bad.clone()));
                    }
                    parts.push(Part::Expression(operator, names));
                    rest = &rest[end + 1..];
                }
                None => {
                    parts.push(Part::Literal(rest.to_owned()));
                    rest = "";
                }
            }
        }
        Ok(UriTemplate { parts })
    }

    /// The variables' values if `uri` matches, by name, percent-decoded.
    pub fn matches(&self, uri: &str) -> Option<Vec<(String, String)>> {
        let mut values = Vec::new();
        match_parts(&self.parts, uri, &mut values).then_some(values)
    }
}

/// Matches `parts` against all of `text`, collecting the values.
fn match_parts(parts: &[Part], text: &str, values: &mut Vec<(String, String)>) -> bool {
    let Some((first, rest)) = parts.split_first() else { return text.is_empty() };
    match first {
        Part::Literal(literal) => text.strip_prefix(literal.as_str()).is_some_and(|t| match_parts(rest, t, values)),
        Part::Expression(operator, names) => {
            let (prefix, stops): (&str, &[char]) = match operator {
                '+' => ("", &[]),
                '#' => ("#", &[]),
                '/' => ("/", &['/', '?', '#']),
                '.' => (".", &['/', '?', '#', '.']),
                ';' => (";", &['/', '?', '#']),
                '?' => ("?", &['#']),
                '&' => ("&", &['#']),
                _ => ("", &['/', '?', '#']),
            };
            let optional = !matches!(operator, '\0' | '+');
            if optional && match_parts(rest, text, values) {
                return true;
            }
            let Some(body) = text.strip_prefix(prefix) else { return false };
            // The longest value first, so `{+path}` takes what it can.
            let limit = body.find(stops).unwrap_or(body.len());
            let ends: Vec<usize> = body[..limit].char_indices().map(|(i, c)| i + c.len_utf8()).collect();
            for &end in ends.iter().rev() {
                let mark = values.len();
                values.extend(split_values(*operator, names, &body[..end]));
                if match_parts(rest, &body[end..], values) {
                    return true;
                }
                values.truncate(mark);
            }
            false
        }
    }
}

/// The values of an expression's `names` in `matched`.
fn split_values(operator: char, names: &[String], matched: &str) -> Vec<(String, String)> {
    if matches!(operator, '?' | '&' | ';') {
        let separator = if operator == ';' { ';' } else { '&' };
        return matched
            .split(separator)
            .filter_map(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                names.iter().any(|n| n == name).then(|| (name.to_owned(), decode(value)))
            })
            .collect();
    }
    if names.len() == 1 {
        return vec![(names[0].clone(), decode(matched))];
    }
    names.iter().cloned().zip(matched.split(',').map(decode)).collect()
}

/// Percent-decodes `text`; sequences that are not valid stay as they are.
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(template: &str, uri: &str) -> Option<Vec<(String, String)>> {
        UriTemplate::parse(template).unwrap().matches(uri)
    }

    fn pairs(list: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect())
    }

    #[test]
    fn simple_variables_stop_at_slashes() {
        assert_eq!(vars("test://template/{id}/data", "test://template/123/data"), pairs(&[("id", "123")]));
        assert_eq!(vars("test://template/{id}/data", "test://template/1/2/data"), None);
        assert_eq!(vars("test://template/{id}/data", "test://template//data"), None);
        assert_eq!(vars("test://template/{id}/data", "test://other/1/data"), None);
        assert_eq!(vars("docs://{a}-{b}", "docs://x-y"), pairs(&[("a", "x"), ("b", "y")]));
        assert_eq!(vars("docs://{name}", "docs://caf%C3%A9"), pairs(&[("name", "café")]));
    }

    #[test]
    fn reserved_and_query_expressions() {
        assert_eq!(vars("file:///{+path}", "file:///a/b/c.txt"), pairs(&[("path", "a/b/c.txt")]));
        assert_eq!(
            vars("search://items{?q,limit}", "search://items?q=x&limit=5"),
            pairs(&[("q", "x"), ("limit", "5")])
        );
        assert_eq!(vars("search://items{?q}", "search://items"), pairs(&[]));
        assert_eq!(vars("p://x{/seg}", "p://x/y"), pairs(&[("seg", "y")]));
    }

    #[test]
    fn bad_templates() {
        assert_eq!(UriTemplate::parse("a{b"), Err(TemplateError::Unbalanced));
        assert_eq!(UriTemplate::parse("a}b"), Err(TemplateError::Unbalanced));
        assert_eq!(UriTemplate::parse("a{}"), Err(TemplateError::BadName(String::new())));
        assert_eq!(UriTemplate::parse("a{b c}"), Err(TemplateError::BadName("b c".into())));
    }
}
