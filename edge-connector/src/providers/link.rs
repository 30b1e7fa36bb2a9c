//! A strict parser of the HTTP `Link` header (RFC 8288 §3): `<uri>; rel="next", <uri>;
//! rel="last"`. Commas and semicolons inside `<…>` or a quoted string do not split; a
//! header that does not follow the grammar yields nothing rather than a guess.

/// One link: its target as written, and its relation types (lower-cased).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The URI reference between `<` and `>`.
    pub target: String,
    /// The `rel` parameter's relation types (`rel="next last"` has two).
    pub rels: Vec<String>,
}

/// The links of a `Link` header value, or `None` when it is malformed.
pub fn parse(header: &str) -> Option<Vec<Link>> {
    let mut p = Parser {
        rest: header.as_bytes(),
    };
    let mut links = Vec::new();
    loop {
        p.skip_ws();
        if p.rest.is_empty() {
            break;
        }
        // Empty list elements (`a, , b`) are allowed by the `#rule`.
        if p.eat(b',') {
            continue;
        }
        links.push(p.link()?);
        p.skip_ws();
        if !p.rest.is_empty() && !p.eat(b',') {
            return None;
        }
    }
    Some(links)
}

/// The target of the first link with relation `rel`.
pub fn target<'a>(links: &'a [Link], rel: &str) -> Option<&'a str> {
    links
        .iter()
        .find(|l| l.rels.iter().any(|r| r.eq_ignore_ascii_case(rel)))
        .map(|l| l.target.as_str())
}

struct Parser<'a> {
    rest: &'a [u8],
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while let [b' ' | b'\t', tail @ ..] = self.rest {
            self.rest = tail;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        match self.rest {
            [first, tail @ ..] if *first == c => {
                self.rest = tail;
                true
            }
            _ => false,
        }
    }

    /// `"<" URI-Reference ">" *( OWS ";" OWS link-param )`
    fn link(&mut self) -> Option<Link> {
        if !self.eat(b'<') {
            return None;
        }
        let end = self.rest.iter().position(|&c| c == b'>')?;
        let target = std::str::from_utf8(self.rest.get(..end)?).ok()?;
        if target.bytes().any(|c| c.is_ascii_whitespace() || c == b'<') {
            return None;
        }
        self.rest = self.rest.get(end + 1..)?;
        let mut rels = Vec::new();
        let mut seen_rel = false;
        loop {
            self.skip_ws();
            if !self.eat(b';') {
                break;
            }
            self.skip_ws();
            let name = self.token()?.to_ascii_lowercase();
            self.skip_ws();
            let value = if self.eat(b'=') {
                self.skip_ws();
                Some(if self.rest.first() == Some(&b'"') {
                    self.quoted()?
                } else {
                    self.token()?
                })
            } else {
                None
            };
            // Only the first `rel` counts (RFC 8288 §3.3).
            if name == "rel" && !seen_rel {
                seen_rel = true;
                rels = value
                    .unwrap_or_default()
                    .split_ascii_whitespace()
                    .map(str::to_ascii_lowercase)
                    .collect();
            }
        }
        Some(Link {
            target: target.to_owned(),
            rels,
        })
    }

    /// RFC 9110 `token`.
    fn token(&mut self) -> Option<String> {
        let tchar = |c: u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c);
        let len = self.rest.iter().take_while(|&&c| tchar(c)).count();
        if len == 0 {
            return None;
        }
        let (tok, tail) = self.rest.split_at(len);
        self.rest = tail;
        std::str::from_utf8(tok).ok().map(str::to_owned)
    }

    /// RFC 9110 `quoted-string`, unescaped.
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        loop {
            match self.rest {
                [b'"', tail @ ..] => {
                    self.rest = tail;
                    return String::from_utf8(out).ok();
                }
                [b'\\', c, tail @ ..] => {
                    out.push(*c);
                    self.rest = tail;
                }
                [c, tail @ ..] if *c != b'\\' && (*c == b'\t' || *c >= 0x20) && *c != 0x7f => {
                    out.push(*c);
                    self.rest = tail;
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_parsed_by_the_grammar_not_by_splitting() {
        // (header, the `next` target expected; None: no next, or a malformed header)
        let cases: [(&str, Option<&str>); 12] = [
            (
                r#"<https://h/api/v3/x?page=2>; rel="next", <https://h/api/v3/x?page=9>; rel="last""#,
                Some("https://h/api/v3/x?page=2"),
            ),
            (
                r#"<https://h/x?page=9>; rel="last", <https://h/x?page=3>; rel="next""#,
                Some("https://h/x?page=3"),
            ),
            // A comma or semicolon inside the URI or a quoted parameter does not split.
            (
                r#"<https://h/x?q=a,b;c&page=4>; title="x, rel=\"next\""; rel=next"#,
                Some("https://h/x?q=a,b;c&page=4"),
            ),
            (
                r#"<https://h/x?page=5>;rel="prev next""#,
                Some("https://h/x?page=5"),
            ),
            (
                r#"<https://h/x?page=6> ; REL = "NEXT""#,
                Some("https://h/x?page=6"),
            ),
            // Only the first rel counts.
            (r#"<https://h/x?page=7>; rel="last"; rel="next""#, None),
            (r#"<https://h/x?page=2>; rel="prev""#, None),
            (", , ", None),
            // Malformed: no brackets, an unterminated URI or string, junk between links.
            (r#"https://h/x?page=2; rel="next""#, None),
            (r#"<https://h/x?page=2; rel="next""#, None),
            (r#"<https://h/x?page=2>; rel="next"#, None),
            (r#"<https://h/x?page=2>; rel="next" junk"#, None),
        ];
        for (header, next) in cases {
            let found = parse(header).and_then(|l| target(&l, "next").map(str::to_owned));
            assert_eq!(found.as_deref(), next, "{header}");
        }
        assert_eq!(parse(", , ").map(|l| l.len()), Some(0));
        assert!(parse("<a> junk").is_none());
    }
}
